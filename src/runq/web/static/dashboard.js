// Refresh every element marked data-live="URL" in place every 2 s (the server renders the
// HTML). A 401 means the session ended: reload to get the sign-in form.
"use strict";
const PERIOD_MS = 2000;
let busy = false;

async function refresh() {
  if (busy || document.hidden) return;
  busy = true;
  try {
    for (const el of document.querySelectorAll("[data-live]")) {
      const response = await fetch(el.dataset.live, { credentials: "same-origin" });
      if (response.status === 401) { location.reload(); return; }
      if (response.ok) el.innerHTML = await response.text();
    }
  } catch (err) {
    // The server is restarting or unreachable: keep showing the last figures.
  } finally {
    busy = false;
  }
}

setInterval(refresh, PERIOD_MS);
