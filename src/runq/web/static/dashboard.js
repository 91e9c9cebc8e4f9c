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

// A worker's log page: the lines so far, then each new one as the worker prints it
// (server-sent events; the session cookie signs the request in).
function followLog(pre) {
  const state = document.getElementById("log-state");
  const source = new EventSource(pre.dataset.follow);
  source.onmessage = (event) => {
    const line = JSON.parse(event.data);
    const when = line.at ? new Date(line.at * 1000).toISOString().slice(11, 23) : "";
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(`${when} ${line.line}\n`);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  source.addEventListener("end", () => {
    source.close();
    if (state) state.textContent = "The worker has ended: its whole log is shown.";
  });
  source.onerror = () => {
    if (state) state.textContent = "Reconnecting…";
  };
}

for (const pre of document.querySelectorAll("pre[data-follow]")) followLog(pre);
