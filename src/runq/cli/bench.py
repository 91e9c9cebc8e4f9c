"""`runq bench ENDPOINT`: a live load generator with a report (issue 5).

Kept apart from cli.py, which registers it with `register_bench(app)`; what it shares with
the other commands (options, the key, the error idiom) comes from runq.cli.common.
"""

from __future__ import annotations

import asyncio
import enum
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from runq.bench import traces
from runq.cli.common import DEFAULT_URL, KeyOpt, UrlOpt, fail
from runq.cli.common import key as api_key_of
from runq.errors import BadRequest, NotFound

console = Console()


class Arrivals(enum.StrEnum):
    CONSTANT = "constant"
    POISSON = "poisson"
    TRACE = "trace"


class TraceFormat(enum.StrEnum):
    TIMESTAMPS = "timestamps"
    AZURE_FUNCTIONS = "azure-functions"
    AZURE_LLM = "azure-llm"


def _opt(flag: str, env: str, text: str) -> Any:
    return typer.Option(flag, envvar=env, help=f"{text} (env {env}).")


def arrivals_for(
    arrivals: Arrivals,
    rate: float,
    duration: float,
    trace: Path | None,
    trace_format: TraceFormat,
    seed: int,
) -> tuple[float, ...]:
    """The arrival times the flags ask for.

    Raises:
        BadRequest: a rate or duration not above 0, no --trace for trace arrivals, or a trace
            file that is missing or not in its format (the message names the flag or file).
    """
    if arrivals == Arrivals.TRACE:
        if trace is None:
            raise BadRequest("--arrivals trace needs --trace FILE")
        return traces.load(trace, trace_format.value).arrivals
    if not rate > 0:
        raise BadRequest(f"--rate {rate:g}: must be above 0 (jobs per second)")
    if not duration > 0:
        raise BadRequest(f"--duration {duration:g}: must be above 0 (seconds)")
    if arrivals == Arrivals.CONSTANT:
        return traces.constant(rate, duration).arrivals
    return traces.poisson(rate, duration, seed).arrivals


def read_payload(path: Path | None) -> Any:
    """The JSON in `path` ({} without one). Raises BadRequest naming the file."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"payload file {path}: cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"payload file {path}: not valid JSON: {exc}") from None


def bench(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    arrivals: Annotated[
        Arrivals, _opt("--arrivals", "RUNQ_BENCH_ARRIVALS", "When jobs arrive")
    ] = Arrivals.CONSTANT,
    rate: Annotated[
        float, _opt("--rate", "RUNQ_BENCH_RATE", "Jobs per second, constant or poisson")
    ] = 1.0,
    duration: Annotated[
        float, _opt("--duration", "RUNQ_BENCH_DURATION", "Seconds of arrivals, before --speed")
    ] = 60.0,
    trace: Annotated[
        Path | None, _opt("--trace", "RUNQ_BENCH_TRACE", "Trace file for --arrivals trace")
    ] = None,
    trace_format: Annotated[
        TraceFormat, _opt("--trace-format", "RUNQ_BENCH_TRACE_FORMAT", "Format of --trace")
    ] = TraceFormat.TIMESTAMPS,
    speed: Annotated[
        float,
        _opt("--speed", "RUNQ_BENCH_SPEED", "Time compression: 60 plays 1 h of arrivals in 1 min"),
    ] = 1.0,
    payload: Annotated[
        Path | None,
        _opt("--payload", "RUNQ_BENCH_PAYLOAD", "JSON file: each job's input, or a whole body"),
    ] = None,
    seed: Annotated[int, _opt("--seed", "RUNQ_BENCH_SEED", "Seed of poisson arrivals")] = 1,
    out: Annotated[
        Path, _opt("--out", "RUNQ_BENCH_OUT", "Folder for jobs.csv, latency.png, workers.png")
    ] = Path("bench-out"),
    drain_timeout: Annotated[
        float,
        _opt(
            "--drain-timeout", "RUNQ_BENCH_DRAIN_TIMEOUT", "Seconds to wait for jobs after the last"
        ),
    ] = 600.0,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = "",
) -> None:
    """Load an endpoint with jobs; report delay, execution, cold starts, throughput and cost."""
    from runq.bench import report
    from runq.bench.load import LoadProgress, LoadResult, run_load

    try:
        if not speed > 0:
            raise BadRequest(f"--speed {speed:g}: must be above 0")
        times = arrivals_for(arrivals, rate, duration, trace, trace_format, seed)
        body = read_payload(payload)
    except BadRequest as exc:
        fail(str(exc), 2)
        return
    key = api_key_of(api_key)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    failure: str | None = None
    result: LoadResult | None = None
    with Progress(*columns, console=console, transient=False) as progress:
        sent = progress.add_task("submitted", total=len(times))
        ended = progress.add_task("finished", total=len(times))

        def show(state: LoadProgress) -> None:
            progress.update(sent, completed=state.submitted)
            progress.update(ended, completed=state.finished)

        load = run_load(url, key, endpoint, times, body, speed, show, drain_timeout_s=drain_timeout)
        try:
            result = asyncio.run(load)
        except NotFound as exc:
            failure = str(exc)
        except httpx.TransportError as exc:
            failure = f"cannot reach runq at {url}: {exc}"
        except httpx.HTTPStatusError as exc:
            failure = f"runq at {url}: {exc.response.status_code}: {exc.response.text[:200]}"
    if result is None:
        fail(failure or "no result")  # after the bar is drawn, so the message comes last
        return
    summary = report.summarize(result)
    for table in report.tables(summary, f"runq bench {endpoint}: {len(times)} jobs"):
        console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    report.write_jobs_csv(result, out / "jobs.csv")
    report.plot_latency(result, out / "latency.png")
    report.plot_workers(result, out / "workers.png")
    (out / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
    console.print(f"wrote {out}/jobs.csv, latency.png, workers.png, summary.json")


def register_bench(app: typer.Typer) -> None:
    app.command("bench")(bench)
