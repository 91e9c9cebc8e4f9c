"""What every `runq` command that talks to a control plane shares: the --url and --api-key
options, the key lookup, one API call with one error idiom (a message on stderr, an exit code).

A module of its own so that app.py and the command modules beside it (logs, secrets, bench...)
all import it and none imports another: no cycle.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from runq.core.config import DEFAULT_DATA_DIR

err = Console(stderr=True, soft_wrap=True)  # a message is one line: scripts grep it

UrlOpt = Annotated[
    str, typer.Option("--url", envvar="RUNQ_URL", help="Control plane URL (env RUNQ_URL).")
]
KeyOpt = Annotated[
    str, typer.Option("--api-key", envvar="RUNQ_API_KEY", help="API key (env RUNQ_API_KEY).")
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the rows as JSON (the admin API's), for scripts."),
]
DEFAULT_URL = "http://127.0.0.1:8000"
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="RUNQ_CONFIG", help="Server config TOML (env RUNQ_CONFIG)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="RUNQ_DATA_DIR", help="runq's data dir (env RUNQ_DATA_DIR)."),
]
RETRY_FIRST_PAUSE_S = 0.25  # pauses between tries double up to RETRY_MAX_PAUSE_S
RETRY_MAX_PAUSE_S = 2.0


def fail(message: str, code: int = 1) -> NoReturn:
    """The one way a command ends on an error: `error: MESSAGE` on stderr, exit `code` (1: the
    operation failed; 2: bad input, as typer's usage errors). The message is shown as written."""
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def key(api_key: str) -> str:
    """The key given, else the one a local `runq serve` keeps in its default data dir."""
    return key_and_source(api_key)[0]


def key_and_source(api_key: str) -> tuple[str, str]:
    """The key to send and where it came from, for a 401 that must say which key was wrong."""
    if api_key:
        from_env = os.environ.get("RUNQ_API_KEY") == api_key
        return api_key, "the RUNQ_API_KEY variable" if from_env else "--api-key"
    stored = Path(DEFAULT_DATA_DIR).expanduser() / "api_key"
    if stored.exists():
        return stored.read_text().strip(), f"the file {stored}"
    fail("no API key: set RUNQ_API_KEY or pass --api-key", 2)


def call(
    method: str,
    url: str,
    api_key: str,
    path: str,
    body: Any = None,
    timeout: float = 30,
    headers: dict[str, str] | None = None,
    retry_for_s: float = 0,
) -> Any:
    """One API call; a failure in transport is tried again until `retry_for_s` has passed
    (only for calls safe to repeat: reads, and submissions under an Idempotency-Key)."""
    sent, source = key_and_source(api_key)
    headers = {"Authorization": f"Bearer {sent}", **(headers or {})}
    deadline, pause = time.monotonic() + retry_for_s, RETRY_FIRST_PAUSE_S
    while True:
        try:
            response = httpx.request(
                method, url.rstrip("/") + path, json=body, headers=headers, timeout=timeout
            )
            break
        except httpx.TransportError as exc:
            if time.monotonic() + pause > deadline:
                fail(f"cannot reach runq at {url}: {exc}")
            err.print(f"[yellow]{url}: {str(exc) or type(exc).__name__}; trying again[/yellow]")
            time.sleep(pause)
            pause = min(2 * pause, RETRY_MAX_PAUSE_S)
        except httpx.HTTPError as exc:
            fail(f"cannot reach runq at {url}: {exc}")
    try:
        data = response.json()
    except ValueError:
        data = {"error": response.text}
    if response.status_code >= 400:
        message = data.get("error", data) if isinstance(data, dict) else data
        if response.status_code == 401:
            message = f"{message} (the key sent came from {source})"
        fail(f"{response.status_code}: {message}")
    return data
