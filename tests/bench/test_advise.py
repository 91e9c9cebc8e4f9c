"""`runq advise`: the search, the Pareto set, the recommendation, the rules of thumb, the plot
and the command line (offline: a trace file, an endpoint file and given distributions)."""

from __future__ import annotations

import contextlib
import dataclasses
import doctest
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runq.bench import advise as advise_module
from runq.bench import traces
from runq.bench.advise import (
    Outcome,
    Workload,
    advise,
    busiest_window,
    evaluate,
    pareto,
    recommend,
    rule_of_thumb,
    search_space,
)
from runq.bench.advise_plot import plot_pareto
from runq.bench.dists import Constant, LogNormal
from runq.cli import app
from runq.core import spec as spec_module
from runq.core.spec import ScalingSection
from runq.policy.cost import Rate

pytestmark = pytest.mark.timeout(60)


def point(cost: float, p95: float, **scaling: Any) -> Outcome:
    return Outcome(ScalingSection(**scaling), cost, p95, p95 / 2, 0)


def make_workload(**overrides: Any) -> Workload:
    """Poisson arrivals, 0.2/s for 5 min (~60 jobs), 2 s jobs, 5 s cold starts."""
    fields: dict[str, Any] = {
        "arrivals": traces.poisson(0.2, 300, seed=2).arrivals,
        "execution": Constant(2.0),
        "cold_start": Constant(5.0),
        "revival": 0.002,
        "rate": Rate(0.00019, 0.00013),
    }
    fields.update(overrides)
    return Workload(**fields)


# 48 configurations: enough for a trade-off, small enough to simulate in about a second.
GRID = [
    ScalingSection(
        active_workers=active, max_workers=maximum, idle_timeout_s=idle, scaler=scaler,
        flashboot=flashboot,
    )
    for active, maximum in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 2)]
    for idle in (1.0, 10.0)
    for scaler in ("queue_delay", "request_count")
    for flashboot in (False, True)
]  # fmt: skip


def test_module_examples() -> None:
    assert doctest.testmod(advise_module).failed == 0


@pytest.mark.parametrize(
    ("points", "front"),
    [
        pytest.param([(1, 9), (2, 3), (3, 1)], [(1, 9), (2, 3), (3, 1)], id="a trade-off: all"),
        pytest.param([(1, 1), (2, 3), (3, 2)], [(1, 1)], id="cheapest and fastest beats all"),
        pytest.param(
            [(2, 5), (2, 4), (3, 4), (1, 8)],
            [(1, 8), (2, 4)],
            id="same cost: the lower p95 stays; same p95: the cheaper",
        ),
        pytest.param([(1, 2), (1, 2)], [(1, 2)], id="equal points: one stays"),
        pytest.param([], [], id="nothing simulated"),
    ],
)
def test_pareto_set(points: list[tuple[float, float]], front: list[tuple[float, float]]) -> None:
    found = pareto([point(c, p) for c, p in points])
    assert [(o.cost, o.p95_delay_s) for o in found] == front


@pytest.mark.parametrize(
    ("points", "target", "expected"),
    [
        pytest.param([(1, 9), (2, 3), (3, 1)], 5, (2, 3), id="cheapest under a 5 s target"),
        pytest.param([(1, 9), (2, 3), (3, 1)], 3, (2, 3), id="a p95 equal to the target meets it"),
        pytest.param([(1, 9), (2, 3), (3, 1)], 0.5, None, id="none meets 0.5 s"),
        pytest.param([(2, 3), (2, 1)], 5, (2, 1), id="a tie on cost: the lower p95"),
    ],
)
def test_recommendation_is_the_cheapest_that_meets_the_target(
    points: list[tuple[float, float]], target: float, expected: tuple[float, float] | None
) -> None:
    found = recommend([point(c, p) for c, p in points], target)
    assert (found and (found.cost, found.p95_delay_s)) == expected


@pytest.mark.parametrize(
    ("per_minute", "seconds", "active", "maximum"),
    [
        pytest.param(6, 30, 3, 4, id="6/min x 30 s / 60 = 3 active; 3 x 1.2 = 3.6 -> 4 max"),
        pytest.param(30, 9, 5, 6, id="30/min x 9 s / 60 = 4.5 -> 5; 5 x 1.2 = 6 exactly"),
        pytest.param(50, 6, 5, 6, id="50/min x 6 s / 60 = 5 (no float noise); 6 max"),
        pytest.param(1, 1, 1, 2, id="a trickle still gets 1 active; 1.2 -> 2 max"),
        pytest.param(0, 10, 0, 1, id="no traffic: 0 active, max at least 1"),
    ],
)
def test_rule_of_thumb(per_minute: float, seconds: float, active: int, maximum: int) -> None:
    base = ScalingSection(idle_timeout_s=7.0, flashboot=False, scaler="request_count")
    rule = rule_of_thumb(per_minute, seconds, base)
    assert (rule.active_workers, rule.max_workers) == (active, maximum)
    assert (rule.scaler, rule.queue_delay_s) == ("queue_delay", 2.5)  # the seeds' 2-3 s
    assert (rule.idle_timeout_s, rule.flashboot) == (7.0, False)  # the rest as it was


def test_search_space_is_valid_without_duplicates_and_covers_every_scaler() -> None:
    grid = search_space(make_workload(), ScalingSection())
    assert len(grid) == len(set(grid))
    assert all(s.max_workers >= max(1, s.active_workers) for s in grid)
    assert {s.scaler for s in grid} == set(spec_module.SCALERS)
    assert {s.flashboot for s in grid} == {False, True}
    # With active = max no flex worker starts: one configuration stands for all the others.
    pinned = [s for s in grid if s.active_workers == s.max_workers]
    assert len({(s.active_workers, s.max_workers) for s in pinned}) == len(pinned)


@pytest.mark.parametrize(
    ("arrivals", "max_jobs", "expected"),
    [
        pytest.param([0.0, 1.0, 2.0], 5, (0, 3), id="short trace: all of it"),
        # Busiest minute starts at 1000 (3 arrivals in 60 s): 4 jobs centred there.
        pytest.param(
            [0.0, 200.0, 400.0, 1000.0, 1001.0, 1002.0, 2000.0, 3000.0],
            4,
            (1, 5),
            id="a window around the busiest minute",
        ),
        pytest.param([0.0, 1.0, 2.0, 500.0, 900.0], 2, (0, 2), id="clamped at the start"),
    ],
)
def test_busiest_window(arrivals: list[float], max_jobs: int, expected: tuple[int, int]) -> None:
    assert busiest_window(arrivals, max_jobs) == expected


def test_advise_on_a_small_trace() -> None:
    current = ScalingSection(max_workers=2, idle_timeout_s=5.0)
    advice = advise(make_workload(), current, target_p95_s=3.0, budget_s=60, grid=GRID)
    outcomes = advice.outcomes
    assert len(outcomes) == advice.grid_size + 2  # the whole grid, and the references
    assert (advice.rule_of_thumb.label, advice.current.label) == ("rule of thumb", "current")
    assert advice.current.scaling == current
    # The Pareto set: none of its points is beaten on both axes by any outcome.
    for kept in advice.pareto:
        assert not any(
            o.cost <= kept.cost and o.p95_delay_s <= kept.p95_delay_s
            and (o.cost, o.p95_delay_s) != (kept.cost, kept.p95_delay_s)
            for o in outcomes
        )  # fmt: skip
    best = advice.recommended
    assert best is not None and best.p95_delay_s <= 3.0
    assert best.cost == min(o.cost for o in outcomes if o.p95_delay_s <= 3.0)
    assert best in advice.pareto
    # A target nobody meets: no recommendation; a loose one: the cheapest of all.
    assert recommend(outcomes, -1) is None
    assert recommend(outcomes, 1e9) == min(outcomes, key=lambda o: (o.cost, o.p95_delay_s))


def test_a_tight_budget_cuts_the_search_but_keeps_the_references() -> None:
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731 - each reading of the clock is a second later
    advice = advise(make_workload(), ScalingSection(), 3.0, budget_s=8, clock=clock, grid=GRID)
    assert 0 < len(advice.outcomes) - 2 < len(GRID)
    assert advice.rule_of_thumb in advice.outcomes and advice.current in advice.outcomes


def test_a_grid_too_big_for_the_budget_is_screened_then_refined_on_the_whole_trace() -> None:
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731 - the two references "take" 0.5 s each
    workload = make_workload()
    # 48 configurations x 0.5 s = 24 s > 60 % of a 30 s budget: two passes.
    advice = advise(workload, ScalingSection(), 3.0, budget_s=30, clock=clock, grid=GRID,
                    screen_jobs=20)  # fmt: skip
    assert 0 < advice.screened < len(GRID)
    refined = advice.outcomes[2:]
    assert refined and advice.jobs == len(workload.arrivals)
    # The figures reported are the whole trace's, not the screening window's.
    for outcome in refined:
        assert outcome == evaluate(workload, outcome.scaling)


def test_parallel_search_finds_what_the_serial_one_does() -> None:
    workload = make_workload(execution=LogNormal.from_median(2.0, 0.5))
    serial = advise(workload, ScalingSection(), 3.0, budget_s=60, processes=1, grid=GRID[:16])
    parallel = advise(workload, ScalingSection(), 3.0, budget_s=60, processes=2, grid=GRID[:16])
    assert parallel.outcomes == serial.outcomes


def test_pareto_plot_is_a_png(tmp_path: Path) -> None:
    workload = make_workload(execution=LogNormal.from_median(2.0, 0.3))
    advice = advise(workload, ScalingSection(), 3.0, budget_s=5, grid=GRID[:12])
    path = plot_pareto(advice, tmp_path / "plots" / "pareto.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000  # axes, points and a legend, not an empty canvas


# --- the command line ------------------------------------------------------------------------


def runq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runq.cli", "advise", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def files(tmp_path: Path) -> Path:
    arrivals = traces.poisson(0.1, 300, seed=3).arrivals
    (tmp_path / "trace.csv").write_text("t\n" + "\n".join(f"{t:.3f}" for t in arrivals) + "\n")
    (tmp_path / "endpoint.toml").write_text(
        'name = "demo"\n[worker]\ncommand = ["python", "handler.py"]\n[compute]\n'
        'gpu = ["80GB"]\n[scaling]\nmax_workers = 2\nidle_timeout = "5s"\nqueue_delay = "4s"\n'
    )
    return tmp_path


def test_cli_prints_the_pareto_set_and_references_and_writes_the_plot(files: Path) -> None:
    result = runq(
        "--trace", "trace.csv", "--spec", "endpoint.toml", "--cold-start", "6",
        "--execution", "lognormal:3,0.3", "--target-p95", "4", "--plot", "out.png",
        "--budget", "2", "--processes", "1", cwd=files,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Pareto set" in out and "* recommended" in out
    assert "priced as 80GB" in out and "current configuration from endpoint.toml" in out
    assert "cold start: 6s (given)" in out
    current = next(line for line in out.splitlines() if "│ current" in line)
    assert "0/2 queue_delay 4s, idle 5s, flashboot on" in current  # the spec's own config
    assert "rule of thumb" in out and "recommended vs current" in out
    assert (files / "out.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_reads_the_header_less_timestamps_csv_that_bench_reads(files: Path) -> None:
    plain = "\n".join(f"{t:.3f}" for t in traces.poisson(0.1, 120, seed=4).arrivals) + "\n"
    (files / "plain.csv").write_text(plain)
    with contextlib.chdir(files):
        result = CliRunner().invoke(
            app,
            ["advise", "--trace", "plain.csv", "--execution", "1", "--budget", "1",
             "--processes", "1"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Pareto set" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--trace", "trace.csv"], "has no execution times: give --execution", id="no times"
        ),
        pytest.param(
            ["--trace", "nope.csv", "--execution", "1"], "nope.csv", id="missing trace file"
        ),
        pytest.param(
            ["--trace", "trace.csv", "--execution", "fast"], "--execution: 'fast' is not a",
            id="bad duration",
        ),
        pytest.param(
            ["--trace", "trace.csv", "--execution", "1", "--spec", "endpoint.toml",
             "--endpoint", "demo"], "not both", id="two sources of the current config",
        ),
        pytest.param(["--execution", "1"], "give --trace FILE", id="no trace at all"),
        pytest.param(
            ["--trace", "trace.csv", "--execution", "1", "--gpu", "Z80"], "unknown GPU",
            id="unknown gpu",
        ),
    ],
)  # fmt: skip
def test_cli_bad_usage_exits_2_with_a_message(files: Path, args: list[str], message: str) -> None:
    # In-process (typer's runner): argument checks need no new interpreter each.
    with contextlib.chdir(files):
        result = CliRunner().invoke(app, ["advise", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())


def test_search_space_follows_the_spec_scalers(monkeypatch: pytest.MonkeyPatch) -> None:
    # A scaler the knob table does not know is still searched, at its default threshold.
    monkeypatch.setattr(spec_module, "SCALERS", ("queue_delay", "brand_new"))
    grid = search_space(make_workload(), dataclasses.replace(ScalingSection()))
    assert {s.scaler for s in grid} == {"queue_delay", "brand_new"}
    new = [s for s in grid if s.scaler == "brand_new"]
    assert {s.queue_delay_s for s in new} == {ScalingSection().queue_delay_s}
