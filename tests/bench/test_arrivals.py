"""Arrivals for `runq bench`: a plain CSV of timestamps, a constant rate, a trace file checked
against the format named, and the flags' errors naming the flag or file."""

from __future__ import annotations

from pathlib import Path

import pytest

from runq.bench import traces
from runq.cli.bench import Arrivals, TraceFormat, arrivals_for, read_payload
from runq.errors import BadRequest


@pytest.mark.parametrize(
    ("text", "arrivals"),
    [
        # sorted, from the first: 100 -> 0, 100.25 -> 0.25, 101.5 -> 1.5
        pytest.param("100\n101.5\n100.25\n", (0.0, 0.25, 1.5), id="bare seconds, unsorted"),
        pytest.param("t\n5\n7\n", (0.0, 2.0), id="a header row is skipped"),
        pytest.param("at,who\n5,a\n\n6,b\n", (0.0, 1.0), id="first column; blank lines skipped"),
        pytest.param(
            "2024-01-01T00:00:00\n2024-01-01T00:01:30\n", (0.0, 90.0), id="ISO date-times"
        ),
    ],
)
def test_a_csv_of_timestamps_gives_arrivals_from_its_first(
    tmp_path: Path, text: str, arrivals: tuple[float, ...]
) -> None:
    path = tmp_path / "times.csv"
    path.write_text(text)
    assert traces.load_timestamps(path).arrivals == pytest.approx(arrivals)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("1\nlater\n", "line 2: 'later' is not a time", id="a bad row names its line"),
        pytest.param("t\n", "no rows", id="a header alone"),
    ],
)
def test_a_bad_csv_of_timestamps_names_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "times.csv"
    path.write_text(text)
    with pytest.raises(BadRequest, match=message) as caught:
        traces.load_timestamps(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("rate", "duration", "arrivals"),
    [
        pytest.param(2.0, 2.0, (0.0, 0.5, 1.0, 1.5), id="2/s for 2 s is four, 0.5 s apart"),
        pytest.param(20.0, 1.0, tuple(k / 20 for k in range(20)), id="20/s for 1 s is twenty"),
        pytest.param(0.5, 3.0, (0.0, 2.0), id="0.5/s for 3 s is two"),
    ],
)
def test_constant_arrivals_are_evenly_spaced(
    rate: float, duration: float, arrivals: tuple[float, ...]
) -> None:
    assert traces.constant(rate, duration).arrivals == pytest.approx(arrivals)


FUNCTIONS_HEADER = "HashFunction," + ",".join(str(m) for m in range(1, 1441))


@pytest.mark.parametrize(
    ("text", "trace_format", "outcome"),
    [
        pytest.param(
            FUNCTIONS_HEADER + "\nf," + ",".join(["2"] + ["0"] * 1439) + "\n",
            "azure-functions",
            (0.0, 30.0),  # 2 in the first minute, at 15 s and 45 s
            id="an Azure Functions file read as such",
        ),
        pytest.param(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-01-01 00:00:01,1,1\n"
            "2024-01-01 00:00:03,1,1\n",
            "azure-llm",
            (0.0, 2.0),
            id="an Azure LLM file read as such",
        ),
        pytest.param("10\n11.5\n10.25\n", "auto", (0.0, 0.25, 1.5), id="auto: no header"),
        pytest.param("t\n10\n12\n", "auto", (0.0, 2.0), id="auto: a header row"),
        pytest.param(
            "id,time\na,5\nb,7\n", "auto", (0.0, 2.0), id="auto: a named column, not the first"
        ),
        pytest.param(
            FUNCTIONS_HEADER + "\nf," + ",".join(["1"] + ["0"] * 1439) + "\n",
            "auto",
            (0.0,),
            id="auto: the Azure Functions format by its columns",
        ),
        pytest.param("", "auto", "no rows", id="auto: an empty file"),
        pytest.param(
            "t\n1\n", "azure-functions", "not the Azure Functions format", id="wrong format"
        ),
        pytest.param("t\n1\n", "azure-llm", "not the Azure LLM format", id="not the LLM format"),
        pytest.param("t\n1\n", "parquet", "expected one of", id="an unknown format"),
    ],
)
def test_a_trace_file_is_read_in_the_format_named(
    tmp_path: Path, text: str, trace_format: str, outcome: tuple[float, ...] | str
) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    if isinstance(outcome, str):
        with pytest.raises(BadRequest, match=outcome):
            traces.load(path, trace_format)
    else:
        assert traces.load(path, trace_format).arrivals == pytest.approx(outcome)


def test_the_flags_choose_arrivals_and_refuse_bad_values(tmp_path: Path) -> None:
    constant = arrivals_for(Arrivals.CONSTANT, 4, 1, None, TraceFormat.TIMESTAMPS, 1)
    assert constant == pytest.approx((0.0, 0.25, 0.5, 0.75))
    poisson = arrivals_for(Arrivals.POISSON, 50, 10, None, TraceFormat.TIMESTAMPS, 3)
    assert poisson == arrivals_for(Arrivals.POISSON, 50, 10, None, TraceFormat.TIMESTAMPS, 3)
    assert 400 < len(poisson) < 600  # about 50/s for 10 s
    with pytest.raises(BadRequest, match="--rate -1: must be above 0"):
        arrivals_for(Arrivals.POISSON, -1, 10, None, TraceFormat.TIMESTAMPS, 1)
    missing = tmp_path / "gone.csv"
    with pytest.raises(BadRequest, match=f"{missing}: no such trace file"):
        arrivals_for(Arrivals.TRACE, 1, 1, missing, TraceFormat.TIMESTAMPS, 1)


def test_a_payload_file_is_json_or_a_clear_error(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"prompt": "hi"}')
    bad.write_text("prompt: hi")
    assert read_payload(good) == {"prompt": "hi"}
    assert read_payload(None) == {}
    with pytest.raises(BadRequest, match=f"payload file {bad}: not valid JSON"):
        read_payload(bad)
