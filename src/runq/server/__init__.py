"""The composition root: builds the store, the control plane and the app (api routers and the
dashboard), and serves them. It sits on top of `runq.api` and `runq.web`, which are siblings
and never import it."""
