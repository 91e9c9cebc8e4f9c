"""`runq advise`: which scaling configuration to run, by simulating a trace (issue 5).

Kept apart from app.py, which registers it with `register_advise(app)`. Like bench.py, this
module does not import runq.cli (`python -m runq.cli` runs cli.py as __main__).
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from runq.bench import traces
from runq.bench.advise import SCALER_KNOBS, Advice, Outcome, Workload, advise
from runq.bench.dists import Constant, Dist, parse_dist
from runq.bench.history import History, HistoryUnavailable, fetch_history
from runq.cli.common import fail
from runq.core.hosts import category_named, category_of
from runq.core.spec import ScalingSection, load_spec
from runq.errors import BadRequest, SpecError
from runq.policy.cost import Rate

console = Console()
err = Console(stderr=True, soft_wrap=True)  # a message is one line: scripts grep it

DEFAULT_COLD_START_S = 10.0  # without a measurement or --cold-start (a model load of seconds)
DEFAULT_REVIVAL_S = 0.002  # FlashBoot: a parked process resumes in milliseconds
PRICE_FALLBACK = "24GB"  # a cpu endpoint costs 0: price it as the common 24 GB GPU


class TraceFormat(enum.StrEnum):
    AUTO = "auto"
    TIMESTAMPS = "timestamps"
    AZURE_FUNCTIONS = "azure-functions"
    AZURE_LLM = "azure-llm"


def _opt(flag: str, env: str, text: str) -> Any:
    return typer.Option(flag, envvar=env, help=f"{text} (env {env}).")


class _Fail(Exception):
    """A message for the user and the exit status (1: a failure, 2: bad usage)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _dist(flag: str, text: str | None) -> Dist | None:
    if text is None:
        return None
    try:
        return parse_dist(text)
    except ValueError as exc:
        raise _Fail(f"{flag}: {exc}") from None


def _rate(gpu: str | None, spec_gpus: tuple[str, ...]) -> tuple[Rate, str]:
    """The price of one worker: --gpu, else the spec's first GPU category, else 24 GB."""
    names = [gpu] if gpu else [*spec_gpus]
    for name in names:
        category = category_named(name) or category_of(name)
        if category is None:
            if gpu:
                raise _Fail(f"--gpu: unknown GPU category or type {gpu!r} (e.g. 24GB, L4, H100)")
            continue
        if category.flex_per_s > 0:
            return Rate(category.flex_per_s, category.active_per_s), category.name
    fallback = category_named(PRICE_FALLBACK)
    assert fallback is not None
    return Rate(fallback.flex_per_s, fallback.active_per_s), f"{fallback.name} (assumed)"


def _trace(path: Path | None, trace_format: TraceFormat, history: History | None) -> traces.Trace:
    if path is None:
        if history is None:
            raise _Fail("give --trace FILE, or --endpoint NAME to replay its recorded jobs")
        if not history.jobs:
            raise _Fail(f"endpoint '{history.endpoint}' has no finished jobs to replay: --trace")
        return history.trace()
    try:
        return traces.load(path, trace_format.value)  # the parser `runq bench` uses
    except BadRequest as exc:
        raise _Fail(str(exc)) from None


def _describe(scaling: ScalingSection) -> str:
    knob = next((k for k in SCALER_KNOBS if k.scaler == scaling.scaler), None)
    threshold = f" {getattr(scaling, knob.field):g}" if knob else ""
    unit = "s" if knob and knob.field.endswith("_s") else ("/worker" if knob else "")
    return (
        f"{scaling.active_workers}/{scaling.max_workers} {scaling.scaler}{threshold}{unit}, "
        f"idle {scaling.idle_timeout_s:g}s, flashboot {'on' if scaling.flashboot else 'off'}"
    )


def _row(table: Table, advice: Advice, outcome: Outcome, mark: str) -> None:
    table.add_row(
        mark,
        _describe(outcome.scaling),
        f"{advice.per_hour(outcome):.4f}",
        f"{outcome.cost:.4f}",
        f"{outcome.p95_delay_s:.2f}",
        f"{outcome.mean_delay_s:.2f}",
        str(outcome.cold_starts),
    )


def show(advice: Advice, plot: Path | None) -> None:
    """The Pareto table with the recommendation marked, then the two references."""
    table = Table(title=f"Pareto set: cost vs p95 delay (target {advice.target_p95_s:g}s)")
    table.add_column("", no_wrap=True)
    table.add_column("active/max scaler, idle, flashboot", no_wrap=True)
    for column in ("$/hour", "$ trace", "p95 delay s", "mean delay s", "cold starts"):
        table.add_column(column, justify="right")
    for outcome in advice.pareto:
        marks = [
            "* recommended" if outcome is advice.recommended else "",
            outcome.label,
        ]
        _row(table, advice, outcome, ", ".join(m for m in marks if m))
    table.add_section()
    for outcome in (advice.rule_of_thumb, advice.current):
        _row(table, advice, outcome, outcome.label)
    console.print(table)
    searched = len(advice.outcomes) - 2
    screened = f", {advice.screened} screened on a shorter window" if advice.screened else ""
    console.print(
        f"simulated {searched} of {advice.grid_size} configurations{screened}, on "
        f"{advice.jobs} jobs over {advice.span_s / 3600:.2f} h"
        + (f" (the busiest part of {advice.trace_jobs})" if advice.jobs < advice.trace_jobs else "")
        + ("; a longer --budget searches more" if searched < advice.grid_size else "")
    )
    best = advice.recommended
    if best is None:
        console.print(
            f"[yellow]no configuration meets p95 <= {advice.target_p95_s:g}s[/yellow]: the "
            f"lowest p95 is {min(o.p95_delay_s for o in advice.outcomes):.2f}s"
        )
    else:
        for ref in (advice.current, advice.rule_of_thumb):
            saving = 1 - best.cost / ref.cost if ref.cost else 0.0
            console.print(
                f"recommended vs {ref.label}: costs {abs(saving):.0%} "
                f"{'less' if saving >= 0 else 'more'}, p95 "
                f"{best.p95_delay_s:.2f}s vs {ref.p95_delay_s:.2f}s"
            )
    if plot is not None:
        console.print(f"plot: {plot}")


def register_advise(app: typer.Typer) -> None:
    app.command("advise")(advise_command)


def advise_command(
    trace: Annotated[Path | None, _opt("--trace", "RUNQ_ADVISE_TRACE", "Trace file (CSV)")] = None,
    trace_format: Annotated[
        TraceFormat, _opt("--trace-format", "RUNQ_ADVISE_TRACE_FORMAT", "Trace format")
    ] = TraceFormat.AUTO,
    endpoint: Annotated[
        str | None,
        _opt("--endpoint", "RUNQ_ADVISE_ENDPOINT", "Fetch config and history from the server"),
    ] = None,
    spec: Annotated[
        Path | None, _opt("--spec", "RUNQ_ADVISE_SPEC", "Endpoint file: the current config")
    ] = None,
    cold_start: Annotated[
        str | None,
        _opt("--cold-start", "RUNQ_ADVISE_COLD_START", "Seconds or lognormal:MEDIAN,SIGMA"),
    ] = None,
    revival: Annotated[
        str | None, _opt("--revival", "RUNQ_ADVISE_REVIVAL", "FlashBoot revival seconds")
    ] = None,
    execution: Annotated[
        str | None,
        _opt("--execution", "RUNQ_ADVISE_EXECUTION", "Job seconds (over the trace's own)"),
    ] = None,
    target_p95: Annotated[
        float, _opt("--target-p95", "RUNQ_ADVISE_TARGET_P95", "Target p95 delay, seconds")
    ] = 5.0,
    plot: Annotated[
        Path | None, _opt("--plot", "RUNQ_ADVISE_PLOT", "Write the Pareto plot PNG here")
    ] = None,
    gpu: Annotated[
        str | None, _opt("--gpu", "RUNQ_ADVISE_GPU", "Price as this GPU category or type")
    ] = None,
    budget: Annotated[
        float, _opt("--budget", "RUNQ_ADVISE_BUDGET", "Seconds to spend searching")
    ] = 30.0,
    processes: Annotated[
        int, _opt("--processes", "RUNQ_ADVISE_PROCESSES", "Simulations in parallel")
    ] = os.cpu_count() or 1,
    seed: Annotated[int, _opt("--seed", "RUNQ_ADVISE_SEED", "Seed of sampled durations")] = 0,
    url: Annotated[str, _opt("--url", "RUNQ_URL", "Control plane URL")] = "http://127.0.0.1:8000",
    api_key: Annotated[str, _opt("--api-key", "RUNQ_API_KEY", "Admin API key")] = "",
) -> None:
    """Search active/max workers, idle timeout, scaler and threshold, FlashBoot: print the
    Pareto set of cost vs p95 delay with a recommendation, against the rules of thumb and
    the current configuration."""
    try:
        _advise(
            trace, trace_format, endpoint, spec, cold_start, revival, execution, target_p95,
            plot, gpu, budget, processes, seed, url, api_key,
        )  # fmt: skip
    except _Fail as exc:
        fail(str(exc), exc.code)


def _advise(
    trace_path: Path | None,
    trace_format: TraceFormat,
    endpoint: str | None,
    spec_path: Path | None,
    cold_start_text: str | None,
    revival_text: str | None,
    execution_text: str | None,
    target_p95: float,
    plot: Path | None,
    gpu: str | None,
    budget: float,
    processes: int,
    seed: int,
    url: str,
    api_key: str,
) -> None:
    if endpoint and spec_path:
        raise _Fail("give --endpoint or --spec, not both")
    if not target_p95 >= 0:
        raise _Fail(f"--target-p95: must be >= 0 seconds, got {target_p95}")
    if not budget > 0:
        raise _Fail(f"--budget: must be > 0 seconds, got {budget}")
    cold_start, revival = _dist("--cold-start", cold_start_text), _dist("--revival", revival_text)
    execution = _dist("--execution", execution_text)

    history: History | None = None
    spec_gpus: tuple[str, ...] = ("cpu",)
    current, current_from = ScalingSection(), "runq defaults"
    if spec_path is not None:
        try:
            spec = load_spec(spec_path)
        except SpecError as exc:
            raise _Fail(str(exc)) from None
        current, current_from, spec_gpus = spec.scaling, str(spec_path), spec.compute.gpu
    if endpoint:
        if not api_key:
            raise _Fail("--endpoint needs an admin key: set RUNQ_API_KEY or pass --api-key")
        try:
            history = fetch_history(url, api_key, endpoint)
        except HistoryUnavailable as exc:
            raise _Fail(str(exc), 1) from None
        current, current_from = history.scaling, f"endpoint {endpoint} on {url}"

    loaded = _trace(trace_path, trace_format, history)
    if not loaded.arrivals:
        raise _Fail(f"trace {loaded.name}: no arrivals")
    sources: dict[str, str] = {}

    def pick(name: str, given: Dist | None, fitted: Dist | None, default: float) -> Dist:
        chosen = given or fitted or Constant(default)
        origin = "given" if given else "fitted to history" if fitted else "assumed"
        sources[name] = f"{chosen.describe()} ({origin})"
        return chosen

    fitted_cold = history.cold_start() if history else None
    fitted_revival = history.revival() if history else None
    cold = pick("cold start", cold_start, fitted_cold, DEFAULT_COLD_START_S)
    revive = pick("revival", revival, fitted_revival, DEFAULT_REVIVAL_S)
    jobs_s: tuple[float, ...] | Dist
    if execution is None and loaded.service_s is not None:
        jobs_s = loaded.service_s
        sources["execution"] = f"the trace's own, mean {sum(jobs_s) / len(jobs_s):.3g}s"
    else:
        fitted = history.execution() if history else None
        if execution is None and fitted is None:
            raise _Fail(
                f"trace {loaded.name} has no execution times: give --execution SECONDS "
                "(or --endpoint NAME to fit them to its recorded jobs)"
            )
        jobs_s = pick("execution", execution, fitted, 0.0)
    rate, priced_as = _rate(gpu, spec_gpus)

    console.print(
        f"trace [bold]{loaded.name}[/bold]: {len(loaded.arrivals)} arrivals over "
        f"{loaded.span_s / 3600:.2f} h ({loaded.requests_per_minute:.2f}/min)"
    )
    for name, text in sources.items():
        console.print(f"  {name}: {text}")
    console.print(f"  priced as {priced_as}; current configuration from {current_from}")
    if history is not None and history.jobs:
        delays = sorted(history.delays_s)
        observed = delays[min(len(delays) - 1, round(0.95 * len(delays) + 0.5) - 1)]
        console.print(
            f"  recorded: {len(history.jobs)} jobs, p95 delay {observed:.2f}s; "
            f"{len(history.cold_starts_s)} cold starts, {history.revivals} revivals"
        )

    workload = Workload(loaded.arrivals, jobs_s, cold, revive, rate, seed)
    try:
        result = advise(workload, current, target_p95, budget, max(1, processes))
    except ValueError as exc:
        raise _Fail(str(exc), 1) from None
    if plot is not None:
        from runq.bench.advise_plot import plot_pareto

        try:
            plot_pareto(result, plot)
        except OSError as exc:
            raise _Fail(f"--plot {plot}: cannot write: {exc.strerror}", 1) from None
    show(result, plot)
