"""The browser dashboard served by `runq serve`: server-rendered pages behind the admin key,
refreshed in place by a few lines of JS, with charts drawn as inline SVG on the server."""
