"""Traces: CSV formats read with clear errors; synthetic ones reproducible by seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from runq.bench import traces
from runq.errors import BadRequest


def test_an_azure_llm_style_csv_gives_arrivals_and_service_times(tmp_path: Path) -> None:
    path = tmp_path / "llm.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:04.5000000,100,10\n"
        "2023-11-16 18:17:03.5000000,2000,1\n"
    )
    trace = traces.load_csv(path, prefill_s_per_token=0.001, decode_s_per_token=0.1)
    assert trace.arrivals == pytest.approx((0.0, 1.0))  # sorted, from the first
    # 2000 * 0.001 + 1 * 0.1 = 2.1 s; 100 * 0.001 + 10 * 0.1 = 1.1 s
    assert trace.service_s == pytest.approx((2.1, 1.1))


def test_plain_seconds_and_the_azure_functions_format(tmp_path: Path) -> None:
    seconds = tmp_path / "s.csv"
    seconds.write_text("t\n10\n12.5\n")
    assert traces.load_csv(seconds).arrivals == (0.0, 2.5)
    functions = tmp_path / "f.csv"
    header = "HashFunction," + ",".join(str(m) for m in range(1, 1441))
    counts = ["0"] * 1440
    counts[0], counts[2] = "2", "1"  # 2 in minute 1, 1 in minute 3
    functions.write_text(header + "\nabc," + ",".join(counts) + "\n")
    # spread inside the minute: 15 s and 45 s; then 120 + 30 s
    assert traces.load_csv(functions).arrivals == (0.0, 30.0, 135.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("when\n1\n", "no timestamp column", id="no timestamp column"),
        pytest.param("t\nsoon\n", "line 2", id="a value that is not a time names its line"),
        pytest.param("t\n", "no rows", id="an empty trace"),
    ],
)
def test_bad_csv_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(BadRequest, match=message) as caught:
        traces.load_csv(path)
    assert str(path) in str(caught.value)


def test_synthetic_traces_repeat_by_seed_and_have_their_shape() -> None:
    assert traces.bursty(3600, seed=7) == traces.bursty(3600, seed=7)
    assert traces.bursty(3600, seed=7) != traces.bursty(3600, seed=8)
    steady = traces.poisson(2.0, 1000, seed=3)
    assert 1800 < len(steady.arrivals) < 2200  # about 2/s for 1000 s
    day = traces.diurnal(86400, peak_rate_per_s=0.5, trough_rate_per_s=0.01, seed=1)
    night = sum(1 for a in day.arrivals if a < 3600)
    noon = sum(1 for a in day.arrivals if 41400 <= a < 45000)
    assert noon > 10 * night  # the peak hour is far busier than the trough hour
