"""`runq.core.spec_edit`: the dashboard's active/max workers change, written into the TOML."""

from __future__ import annotations

import tomllib

import pytest

from runq.core.spec_edit import set_workers
from runq.errors import SpecError

BASE = 'name = "a"\n[worker]\ncommand = ["python", "h.py"]\n'


@pytest.mark.parametrize(
    ("text", "active", "maximum", "expected_lines"),
    [
        pytest.param(
            BASE + "[scaling]\nactive_workers = 0 # warm\nmax_workers = 3\nidle_timeout_s = 9\n",
            1,
            5,
            ["[scaling]", "active_workers = 1", "max_workers = 5", "idle_timeout_s = 9"],
            id="both keys present are replaced, other keys kept",
        ),
        pytest.param(
            BASE + "[scaling]\nidle_timeout_s = 9\n[jobs]\nttl_s = 5\n",
            0,
            2,
            ["[scaling]", "active_workers = 0", "max_workers = 2", "idle_timeout_s = 9"],
            id="missing keys go right under the header, not into the next table",
        ),
        pytest.param(
            BASE,
            2,
            2,
            ["[scaling]", "active_workers = 2", "max_workers = 2"],
            id="no scaling table: one is appended",
        ),
    ],
)
def test_set_workers(text: str, active: int, maximum: int, expected_lines: list[str]) -> None:
    edited = set_workers(text, active, maximum)
    lines = edited.splitlines()
    start = lines.index("[scaling]")
    assert lines[start : start + len(expected_lines)] == expected_lines
    data = tomllib.loads(edited)
    assert data["worker"]["command"] == ["python", "h.py"]
    assert data["scaling"]["active_workers"] == active


@pytest.mark.parametrize(
    ("active", "maximum", "message"),
    [
        pytest.param(-1, 3, "active workers must be 0 or more, not -1", id="negative active"),
        pytest.param(0, 0, "max workers must be 1 or more, not 0", id="zero max"),
        pytest.param(4, 3, "active workers (4) must not exceed max workers (3)", id="active > max"),
    ],
)
def test_bad_counts_are_refused(active: int, maximum: int, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        set_workers(BASE, active, maximum)


def test_inline_scaling_table_is_refused_with_advice() -> None:
    with pytest.raises(SpecError, match="deploy it again"):
        set_workers(BASE.replace("[worker]", "scaling = { max_workers = 3 }\n[worker]"), 1, 2)
