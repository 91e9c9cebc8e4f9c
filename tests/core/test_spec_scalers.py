"""[scaling] for runq's own scalers: "slo" with its p95 target, and "histogram"."""

from __future__ import annotations

from pathlib import Path

import pytest

from runq.core.spec import loads_spec
from runq.errors import SpecError

HEAD = 'name = "e"\n[worker]\ncommand = ["python", "h.py"]\n[scaling]\n'


@pytest.mark.parametrize(
    ("scaling", "scaler", "target"),
    [
        pytest.param('scaler = "slo"\np95_delay_target = "2s"', "slo", 2.0, id="slo with a target"),
        pytest.param(
            'scaler = "slo"\np95_delay_target = 1.5', "slo", 1.5, id="seconds as a number"
        ),
        pytest.param('scaler = "slo"', "slo", 10.0, id="slo without a target gets 10 s"),
        pytest.param('scaler = "histogram"', "histogram", 10.0, id="histogram needs no target"),
    ],
)
def test_runq_scalers_are_accepted(
    tmp_path: Path, scaling: str, scaler: str, target: float
) -> None:
    spec = loads_spec(HEAD + scaling, tmp_path / "e.toml")

    assert (spec.scaling.scaler, spec.scaling.p95_delay_target_s) == (scaler, target)


@pytest.mark.parametrize(
    ("scaling", "says"),
    [
        pytest.param(
            'scaler = "slo"\np95_delay_target = "0s"',
            "field 'scaling.p95_delay_target': must be more than 0s, got 0s",
            id="a zero target",
        ),
        pytest.param(
            'scaler = "slo"\np95_delay_target = "soon"',
            "field 'scaling.p95_delay_target'",
            id="a target that is not a duration",
        ),
        pytest.param(
            'p95_delay_target = "3s"',
            "field 'scaling.p95_delay_target': is read only by scaler = \"slo\" "
            '(this endpoint uses "queue_delay")',
            id="a target on another scaler would be silently ignored",
        ),
        pytest.param(
            'scaler = "slow"',
            "field 'scaling.scaler': must be one of queue_delay, request_count, slo, histogram",
            id="an unknown scaler lists the known ones",
        ),
    ],
)
def test_bad_scaler_settings_name_the_file_and_field(
    tmp_path: Path, scaling: str, says: str
) -> None:
    with pytest.raises(SpecError) as caught:
        loads_spec(HEAD + scaling, tmp_path / "e.toml")

    assert str(tmp_path / "e.toml") in str(caught.value)
    assert says in str(caught.value)
