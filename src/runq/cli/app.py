"""The `runq` command line."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from runq.cli.advise import register_advise
from runq.cli.bench import register_bench
from runq.cli.bundle import register_bundle
from runq.cli.cache import cache_app
from runq.cli.common import DEFAULT_URL, JsonOpt, KeyOpt, UrlOpt, err
from runq.cli.common import call as _call
from runq.cli.common import fail as _fail
from runq.cli.doctor import register_doctor
from runq.cli.logs import register_logs
from runq.cli.secrets import secrets_app
from runq.cli.tables import Column, print_json, show
from runq.core.config import load_config
from runq.core.idempotency import HEADER as IDEMPOTENCY_HEADER
from runq.core.spec import EndpointSpec, load_spec, resolve_spec_path
from runq.errors import SpecError

app = typer.Typer(
    help="runq: self-hosted serverless GPU endpoints, wire-compatible with RunPod.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.command()
def serve(
    endpoints: Annotated[
        list[Path] | None, typer.Argument(help="Endpoint files or folders holding endpoint.toml.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", envvar="RUNQ_CONFIG", help="Server config TOML (env RUNQ_CONFIG)."
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", envvar="RUNQ_HOST", help="Bind address (env RUNQ_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", envvar="RUNQ_PORT", help="Port (env RUNQ_PORT).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", envvar="RUNQ_DATA_DIR", help="Store, logs and keys (env RUNQ_DATA_DIR)."
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", envvar="RUNQ_LOG_LEVEL", help="debug|info|warning (env RUNQ_LOG_LEVEL)."
        ),
    ] = "info",
) -> None:
    """Start the control plane and the workers of the given endpoints."""
    from runq.fleet.containers import require_engine
    from runq.fleet.machine import default_cpu_slots
    from runq.server.serve import build
    from runq.server.serve import serve as run_server

    try:
        overrides = {"host": host, "port": port, "data_dir": str(data_dir) if data_dir else None}
        server_config = load_config(config, overrides, default_cpu_slots=default_cpu_slots())
        specs: list[EndpointSpec] = [load_spec(path) for path in endpoints or []]
        for spec in specs:
            require_engine(spec, server_config)  # fleet/containers.py: image workers
        _, _, api_key = build(server_config)
    except SpecError as exc:
        _fail(str(exc), 2)
        return
    base = server_config.base_url
    console.print(f"runq serving on [bold]{base}[/bold] (data in {server_config.data_dir})")
    for spec in specs:
        route = f"/lb/{spec.name}/..." if spec.type == "load_balancer" else f"/v2/{spec.name}/run"
        console.print(f"  endpoint [bold]{spec.name}[/bold]: {base}{route}")
    if not os.environ.get("RUNQ_API_KEY"):
        console.print(f"  API key: {api_key}  (also in {server_config.data_dir / 'api_key'})")
        console.print(f"  dashboard: {base}/?token={api_key}", soft_wrap=True)
    else:
        # The user chose the key and knows it: keep it out of logs; the page asks for it.
        console.print(f"  dashboard: {base}/")
    console.print(f"  docs: {base}/docs")
    run_server(server_config, specs, log_level)


@app.command()
def deploy(
    file: Annotated[Path, typer.Argument(help="Endpoint file or folder.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Deploy (or replace) an endpoint on a running control plane."""
    try:
        spec = load_spec(file)
    except SpecError as exc:
        _fail(str(exc), 2)
        return
    path = resolve_spec_path(file).resolve()
    _call("POST", url, api_key, "/admin/endpoints", {"path": str(path), "toml": path.read_text()})
    console.print(f"deployed [bold]{spec.name}[/bold]")


@app.command()
def undeploy(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    drain: Annotated[
        bool,
        typer.Option(
            "--drain",
            envvar="RUNQ_UNDEPLOY_DRAIN",
            help="Run the queued jobs first, then stop the workers; new jobs are refused "
            "meanwhile (env RUNQ_UNDEPLOY_DRAIN). Without it queued and running jobs are "
            "cancelled.",
        ),
    ] = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Remove an endpoint: new jobs get 410, its workers stop; its jobs stay readable by id
    for their retention. Kept across restarts."""
    row = _call("DELETE", url, api_key, f"/admin/endpoints/{name}" + ("?drain=1" if drain else ""))
    if row["status"] == "draining":
        console.print(
            f"undeploying [bold]{name}[/bold]: {row['in_queue']} queued and "
            f"{row['in_progress']} running job(s) finish first; new jobs are refused"
        )
    else:
        console.print(f"undeployed [bold]{name}[/bold]: {row['cancelled']} job(s) cancelled")


@app.command()
def run(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    payload: Annotated[str, typer.Argument(help="JSON input, or @file holding it.")],
    sync: Annotated[bool, typer.Option("--sync", help="Wait for the result (runsync).")] = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
    idempotency_key: Annotated[
        str,
        typer.Option(
            "--idempotency-key",
            envvar="RUNQ_IDEMPOTENCY_KEY",
            help="Names this submission: a retry under it gets the same job for 24 h "
            "(env RUNQ_IDEMPOTENCY_KEY). Default: a new uuid4.",
        ),
    ] = "",
    retry_for: Annotated[
        float,
        typer.Option(
            "--retry-for",
            envvar="RUNQ_RETRY_FOR",
            help="Seconds to keep retrying a submission the network lost, under the same "
            "Idempotency-Key (env RUNQ_RETRY_FOR).",
        ),
    ] = 10.0,
) -> None:
    """Submit a job. The JSON is the job's input, or a whole body with an 'input' key.

    Sent with an Idempotency-Key, so a retry after a lost answer never makes a second job."""
    text = payload
    if payload.startswith("@"):
        try:
            text = Path(payload[1:]).read_text()
        except OSError as exc:
            _fail(f"{payload[1:]}: cannot read: {exc.strerror}", 2)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"payload is not valid JSON: {exc}", 2)
        return
    body = value if isinstance(value, dict) and "input" in value else {"input": value}
    route = "runsync" if sync else "run"
    result = _call(
        "POST",
        url,
        api_key,
        f"/v2/{endpoint}/{route}",
        body,
        timeout=330 if sync else 30,
        headers={IDEMPOTENCY_HEADER: idempotency_key or str(uuid.uuid4())},
        retry_for_s=retry_for,
    )
    console.print_json(json.dumps(result))


@app.command()
def status(
    job: Annotated[str, typer.Argument(help="Job id.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Show a job."""
    console.print_json(json.dumps(_call("GET", url, api_key, f"/admin/jobs/{job}")))


@app.command()
def cancel(
    job: Annotated[str, typer.Argument(help="Job id.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Cancel a queued or running job."""
    console.print_json(json.dumps(_call("POST", url, api_key, f"/admin/jobs/{job}/cancel")))


ENDPOINT_COLUMNS = (
    Column("endpoint"),
    Column("type", drop=4),
    Column("queued", right=True),
    Column("running", right=True),
    Column("completed", right=True),
    Column("failed", right=True),
    Column("workers: idle run init throttled"),  # the cell reads 1/0/0/0
    Column("p95 delay s (1 h)", drop=2, right=True),
    Column("cost $ (billed s)", drop=3, right=True),
)


@app.command()
def endpoints(url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = "", as_json: JsonOpt = False) -> None:
    """List deployed endpoints."""
    rows = _call("GET", url, api_key, "/admin/endpoints")
    if as_json:
        print_json(rows)
        return
    cells = []
    for row in rows:
        jobs, workers, cost = row["jobs"], row["workers"], row["cost"]
        p95 = row.get("latency", {}).get("delay_p95_s")
        cells.append(
            [
                row["name"],
                row["type"],
                str(jobs["inQueue"]),
                str(jobs["inProgress"]),
                str(jobs["completed"]),
                str(jobs["failed"]),
                f"{workers['idle']}/{workers['running']}/{workers['initializing']}"
                f"/{workers['throttled']}",
                "-" if p95 is None else f"{p95:.3f}",
                f"{cost['total_usd']:.4f} ({cost['billed_s']:.0f})",
            ]
        )
    show(console, ENDPOINT_COLUMNS, cells)


PERCENTILES = ("p50", "p90", "p95", "p99")


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@app.command()
def metrics(
    endpoint: Annotated[str, typer.Argument(help="The endpoint's name.")],
    window: Annotated[
        float,
        typer.Option(
            "--window",
            envvar="RUNQ_METRICS_WINDOW",
            help="Seconds back from now (env RUNQ_METRICS_WINDOW).",
            min=0.001,
        ),
    ] = 3600,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """An endpoint over a window: jobs, delay and execution percentiles, workers, cost."""
    row = _call("GET", url, api_key, f"/admin/endpoints/{endpoint}/metrics?window={window:g}")
    if as_json:
        print_json(row)
        return
    jobs, delay, execution, used = row["jobs"], row["delay_s"], row["execution_s"], row["workers"]
    console.print(
        f"[bold]{endpoint}[/bold], last {row['window_s']:g} s: {jobs['ended']} jobs ended "
        f"({jobs['completed']} completed, {jobs['failed']} failed, {jobs['cancelled']} "
        f"cancelled, {jobs['timed_out']} timed out)"
    )
    latency = [Column("seconds"), *(Column(h, right=True) for h in ("jobs", *PERCENTILES))]
    show(
        console,
        latency,
        [
            [name, str(p["count"]), *(_s(p[h]) for h in PERCENTILES)]
            for name, p in (("delay", delay), ("execution", execution))
        ],
    )
    fleet = ("cold starts", "revivals", "billed s", "cold start s", "idle s", "running s")
    show(
        console,
        [*(Column(h, right=True) for h in fleet), Column("cost $", right=True)],
        [
            [
                str(used["cold_starts"]),
                str(used["revivals"]),
                f"{used['billed_s']:.1f}",
                f"{used['cold_start_s']:.1f}",
                f"{used['idle_s']:.1f}",
                f"{used['running_s']:.1f}",
                f"{used['cost_usd']:.5f}",
            ]
        ],
    )


WORKER_COLUMNS = (
    Column("worker"),
    Column("endpoint", drop=7),  # a worker's id starts with its endpoint's name
    Column("state"),
    Column("why", fold=True),
    Column("where", drop=4),
    Column("pid", drop=5, right=True),
    Column("cold start s", drop=3, right=True),
    Column("init/import/load/ready s", drop=6),
    Column("jobs", drop=1),
    Column("cost $", drop=2, right=True),
)


@app.command()
def workers(
    endpoint: Annotated[str | None, typer.Argument(help="Only this endpoint.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """List workers: state and why, placement, cold start, jobs and cost."""
    path = "/admin/workers" + (f"?endpoint={endpoint}" if endpoint else "")
    rows = _call("GET", url, api_key, path)
    if as_json:
        print_json(rows)
        return
    cells = []
    for row in rows:
        last = row["transitions"][-1] if row["transitions"] else {"reason": ""}
        where = f"{row['host']} {row['gpu_type']} {row['gpus']}" if row["host"] else "-"
        cold = row["cold_start_s"]
        cells.append(
            [
                row["id"] + (" (active)" if row["active"] else ""),
                row["endpoint"],
                row["state"] + (" (draining)" if row.get("draining") else ""),
                last["reason"] or "-",
                where,
                str(row["pid"] or "-"),
                "-" if cold is None else f"{cold:.2f}" + (" (forked)" if row.get("forked") else ""),
                _phases(row.get("cold_start")),
                f"{len(row['jobs'])} now, {row['jobs_done']} done",
                f"{row['cost_usd']:.5f}",
            ]
        )
    show(console, WORKER_COLUMNS, cells)


def _phases(cold: dict[str, float | None] | None) -> str:
    """`0.01/0.20/2.00/0.05`; `-` for a phase the worker did not report (runpod SDK)."""
    if not cold:
        return "-"
    keys = ("init_s", "import_s", "load_s", "ready_s")
    text = "/".join("-" if cold.get(k) is None else f"{cold[k]:.2f}" for k in keys)
    if cold.get("image_pull_s") is not None:  # an image worker
        container = cold.get("container_start_s")
        start = "-" if container is None else f"{container:.2f}"
        text += f" (pull {cold['image_pull_s']:.2f}, container {start})"
    return text


keys_app = typer.Typer(
    help="Create, list and revoke API keys (needs an admin key).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(cache_app, name="cache")
app.add_typer(secrets_app, name="secrets")


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


@keys_app.command("create")
def keys_create(
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            envvar="RUNQ_KEY_SCOPES",
            help="'admin' or 'invoke:ENDPOINT'; repeat for more (env RUNQ_KEY_SCOPES, "
            "space-separated).",
        ),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", envvar="RUNQ_KEY_NAME", help="A label (env RUNQ_KEY_NAME).")
    ] = "",
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Create a key. Prints the key alone on stdout, once: runq keeps only its hash."""
    if not scope:
        _fail("give at least one --scope: 'admin' or 'invoke:ENDPOINT'", 2)
        return
    row = _call("POST", url, api_key, "/admin/keys", {"name": name, "scopes": scope})
    err.print(
        f"created key [bold]{row['id']}[/bold]"
        + (f" ({row['name']})" if row["name"] else "")
        + f", scopes {' '.join(row['scopes'])}. It is shown this once: keep it now."
    )
    print(row["key"])


KEY_COLUMNS = (
    Column("id"),
    Column("name", fold=True),
    Column("scopes", fold=True),
    Column("created"),
    Column("revoked"),
)


@keys_app.command("ls")
def keys_ls(url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = "", as_json: JsonOpt = False) -> None:
    """List keys: id, name, scopes, created, revoked (never a key)."""
    rows = _call("GET", url, api_key, "/admin/keys")
    if as_json:
        print_json(rows)
        return
    cells = [
        [
            row["id"],
            row["name"] or "-",
            " ".join(row["scopes"]),
            _when(row["created_at"]),
            _when(row["revoked_at"]),
        ]
        for row in rows
    ]
    show(console, KEY_COLUMNS, cells)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (see runq keys ls).")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Revoke a key: from now on it gets 401."""
    row = _call("DELETE", url, api_key, f"/admin/keys/{key_id}")
    console.print(f"revoked [bold]{row['id']}[/bold] at {_when(row['revoked_at'])}")


register_advise(app)
register_bench(app)
register_bundle(app)
register_logs(app)
register_doctor(app)
