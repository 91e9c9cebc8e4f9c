"""`runq logs ENDPOINT [--worker ID] [--job ID] [-f] [--since 10m]`: what workers printed, from
the control plane (also for workers on Ray nodes and workers that have ended)."""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from runq.cli.common import DEFAULT_URL, KeyOpt, UrlOpt, call, fail, key_and_source

out = Console(highlight=False, soft_wrap=True)


def _show(line: dict[str, Any], many_workers: bool, as_json: bool) -> None:
    if as_json:
        print(json.dumps(line), flush=True)
        return
    at = line.get("at")
    when = (
        datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]
        if isinstance(at, int | float)
        else "--:--:--.---"
    )
    who = f"[cyan]{escape(str(line.get('worker')))}[/cyan] " if many_workers else ""
    out.print(f"[dim]{when}[/dim] {who}{escape(str(line.get('line', '')))}")


def logs(
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose workers' logs to show.")],
    worker: Annotated[
        str | None,
        typer.Option("--worker", "-w", help="Only this worker (an id from runq workers)."),
    ] = None,
    job: Annotated[
        str | None, typer.Option("--job", "-j", help="Only what the job's worker printed for it.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Only lines from this long ago on: 90, 10m, 2h.")
    ] = None,
    tail: Annotated[int, typer.Option("--tail", "-n", help="At most this many past lines.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Print what an endpoint's workers printed (stdout and stderr), oldest first."""
    if job is not None:
        data = call("GET", url, api_key, f"/admin/jobs/{job}/logs")
        for line in data["lines"]:
            _show(line, False, as_json)
        return
    path = f"/admin/workers/{worker}/logs" if worker else f"/admin/endpoints/{endpoint}/logs"
    params: dict[str, str] = {"tail": str(tail)}
    if since:
        params["since"] = since
    if not follow:
        data = call("GET", url, api_key, f"{path}?{httpx.QueryParams(params)}")
        for line in data["lines"]:
            _show(line, worker is None, as_json)
        return
    params["follow"] = "true"
    key, _ = key_and_source(api_key)
    try:
        with httpx.stream(
            "GET",
            url.rstrip("/") + path,
            params=params,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(10, read=None),
        ) as response:
            if response.status_code >= 400:
                response.read()
                fail(f"{response.status_code}: {response.json().get('error', response.text)}")
            for raw in response.iter_lines():
                if raw.startswith("event: end"):
                    return
                if raw.startswith("data: "):
                    _show(json.loads(raw[6:]), worker is None, as_json)
    except httpx.HTTPError as exc:
        fail(f"cannot reach runq at {url}: {exc}")
    except KeyboardInterrupt:
        return


def register_logs(app: typer.Typer) -> None:
    app.command("logs")(logs)
