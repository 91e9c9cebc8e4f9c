"""Hypothesis on endpoint files and durations: whatever a user writes, runq answers with a spec
or a SpecError that names the file, never another exception.

Each example is a valid endpoint table (any of its sections and keys, in each form users write)
with up to two mutations, each with the outcome it calls for: a value the field never takes, an
unknown key or a required key deleted must be refused; an optional key deleted must still be
accepted; any TOML value in a field may go either way. So each check of the parser is reached
with everything before it valid, and is held to what it must do. Every accepted spec must hold
what the rest of runq relies on. The same tables are also written out as TOML text, which must
parse to the same outcome.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runq.core.durations import parse_duration
from runq.core.spec import (
    ENDPOINT_TYPES,
    MAX_EXECUTION_TIMEOUT_S,
    MIN_TTL_S,
    NAME_PATTERN,
    SCALERS,
    EndpointSpec,
    loads_spec,
    parse_spec,
)
from runq.errors import SpecError

pytestmark = pytest.mark.timeout(120)  # passes in seconds; a failure is shrunk first

FILE = Path("/nonexistent/endpoints/endpoint.toml")  # never read: only named
FUZZ = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
# The main property gets more: a table is about a millisecond, and each of its ~130 kinds of
# mutation needs a few tries to be met.
MORE = settings(FUZZ, max_examples=400)

# --- TOML values and their text --------------------------------------------------------------

HUGE_INTS = st.integers(min_value=10**300, max_value=10**320)  # about a float's range
PAST_FLOAT_INTS = st.integers(min_value=2**1024, max_value=10**320)  # float() overflows
scalars = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    HUGE_INTS,
    st.floats(),
    st.booleans(),
    st.datetimes().map(lambda t: t.replace(fold=0)),  # TOML has no fold: it compares unequal
    st.dates(),
    st.times().map(lambda t: t.replace(fold=0)),
)
keys = st.text(max_size=8)
toml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)


def toml_string(text: str) -> str:
    # JSON escapes the quote, the backslash and C0 controls the way TOML does; TOML also wants
    # DEL escaped, and takes other non-ASCII characters as they are.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """The TOML text of a value, tables written inline.

    >>> toml_value({"a": [1, 2.5, "x"], "b": float("-inf")})
    '{"a" = [1, 2.5, "x"], "b" = -inf}'
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("-inf" if value < 0 else "inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise TypeError(f"no TOML for {value!r}")


def toml_document(table: dict[str, Any]) -> str:
    return "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in table.items())


# --- valid endpoint tables -------------------------------------------------------------------

UNITS = [("", 1.0), ("s", 1.0), ("ms", 0.001), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)]


@st.composite
def durations_within(draw: st.DrawFn, low: float, high: float) -> Any:
    """A duration between `low` and `high` seconds in one of the forms users write: 90, 90.0,
    "90", "90s", " 90 s", "1500ms", "5m", "2h"."""
    unit, scale = draw(st.sampled_from(UNITS))
    lowest, highest = math.ceil(low / scale), math.floor(high / scale)
    if lowest > highest:
        unit, scale, lowest, highest = "s", 1.0, math.ceil(low), math.floor(high)
    n = draw(st.integers(min_value=lowest, max_value=highest))
    if unit == "":
        return draw(st.sampled_from([n, float(n), str(n)]))
    return draw(st.sampled_from([f"{n}{unit}", f" {n} {unit} "]))


text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10)
words = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=["Z", "C"]),
    min_size=1,
)
env_names = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00="), min_size=1, max_size=6
)
ports = st.integers(min_value=1, max_value=65535)

OPTIONAL: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "worker": {
        "dir": text,
        "env": st.dictionaries(env_names, text, max_size=2),
        "requirements": text,
        "health_port": ports,
    },
    "compute": {
        "gpu": st.lists(text, max_size=3),
        "gpu_types": st.lists(text, max_size=3),
        "gpus_per_worker": st.integers(min_value=1, max_value=8),
        "data_centers": st.lists(text, max_size=3),
        "cuda_versions": st.lists(text, max_size=3),
        "network_volume": text,
    },
    "scaling": {
        "idle_timeout": durations_within(0, 3600),
        "scaler": st.sampled_from(SCALERS),
        "queue_delay": durations_within(0, 3600),
        "requests_per_worker": st.integers(min_value=1, max_value=8),
        "flashboot": st.booleans(),
        "init_timeout": durations_within(0, 3600),
    },
    "jobs": {
        "execution_timeout": durations_within(0, MAX_EXECUTION_TIMEOUT_S),
        "ttl": durations_within(MIN_TTL_S, 7 * 86400),
        "max_retries": st.integers(min_value=0, max_value=5),
    },
    "model": {
        # Single-file forms only: sha256 (drawn independently) is refused with hf://.
        "source": st.sampled_from(
            ["", "https://h/m.bin", "file:///m", "/abs/m", "volume://models/m", "weights/m"]
        ),
        "revision": text,
        "sha256": st.sampled_from(["", "ab" * 32, "AB" * 32]),
        "preload": st.booleans(),
    },
}


def some_of(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    return {key: draw(value) for key, value in fields.items() if draw(st.booleans())}


@st.composite
def valid_tables(draw: st.DrawFn) -> dict[str, Any]:
    endpoint_type = draw(st.sampled_from([None, *ENDPOINT_TYPES]))
    command = st.lists(words, min_size=1, max_size=3) | st.from_regex(r"\A[a-z]+( [a-z.]+){0,2}\Z")
    worker = {"command": draw(command), **some_of(draw, OPTIONAL["worker"])}
    if endpoint_type == "load_balancer" or draw(st.booleans()):
        worker["port"] = draw(ports)
    data: dict[str, Any] = {"name": draw(st.from_regex(NAME_PATTERN, fullmatch=True))}
    if endpoint_type is not None:
        data["type"] = endpoint_type
    data["worker"] = worker
    for section in ("compute", "scaling", "jobs", "model"):
        if draw(st.booleans()):
            data[section] = some_of(draw, OPTIONAL[section])
    if "scaling" in data and draw(st.booleans()):
        active = draw(st.integers(min_value=0, max_value=3))
        data["scaling"]["active_workers"] = active
        data["scaling"]["max_workers"] = draw(st.integers(max(active, 1), active + 3))
    return data


SECTIONS = ("worker", "compute", "scaling", "jobs", "model")

# --- mutations and what the parser must make of them ---------------------------------------

with_nul = st.builds(lambda a, b: f"{a}\x00{b}", text, text)
non_str = st.one_of(st.integers(), st.booleans(), st.floats(), st.lists(st.integers(), max_size=2))
# No digit at all, so never a duration: a regex's \d (and float()) takes any of category Nd.
no_digits = st.text(st.characters(codec="utf-8", exclude_categories=["Nd"]), max_size=8)
not_durations = st.one_of(
    PAST_FLOAT_INTS,
    st.from_regex(r"\A[2-9][0-9]{308,330}(ms|s|h)?\Z"),  # 2e308 and more: infinity
    st.integers(max_value=-1),
    st.floats(max_value=-1e-9),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.booleans(),
    no_digits,
    st.lists(st.integers(), max_size=2),
)
# Values each kind of field must refuse, whatever the rest of the table holds. The likeliest
# mistakes come first: Hypothesis draws a first alternative more often than the others.
REFUSED: dict[str, st.SearchStrategy[Any]] = {
    "name": non_str | with_nul | text.filter(lambda t: not NAME_PATTERN.fullmatch(t)),
    "choice": non_str | text.filter(lambda t: t not in (*ENDPOINT_TYPES, *SCALERS)),
    "path": with_nul | non_str,
    "text": non_str,
    "model_source": non_str
    | st.sampled_from(
        ["s3://b/m", "hf://", "hf://a/b/c", "file://rel", "../up", " x", "ftp://h/m"]
    ),
    "sha256": non_str | text.filter(lambda t: t != "" and not re.fullmatch(r"[0-9a-fA-F]{64}", t)),
    "strings": st.one_of(text, st.integers(), st.lists(st.integers(), min_size=1, max_size=2)),
    "command": st.one_of(
        st.lists(with_nul, min_size=1, max_size=2),
        st.just([]),
        st.just("  "),
        st.lists(st.integers(), min_size=1, max_size=2),
        st.integers(),
        st.booleans(),
    ),
    "env": st.one_of(
        text,
        st.lists(text, max_size=2),
        st.dictionaries(st.sampled_from(["A=B", "=", "A\x00"]), text, min_size=1, max_size=1),
        st.dictionaries(env_names, with_nul | st.integers(), min_size=1, max_size=1),
    ),
    "port": st.one_of(st.booleans(), st.floats(), text),  # any int is taken
    "count0": st.one_of(st.integers(max_value=-1), st.booleans(), st.floats(), text),
    "count1": st.one_of(st.integers(max_value=0), st.booleans(), st.floats(), text),
    "bool": st.one_of(st.integers(), st.floats(), text),
    "duration": not_durations,
    "ttl": durations_within(0, MIN_TTL_S - 1) | not_durations,
    "timeout": durations_within(MAX_EXECUTION_TIMEOUT_S + 1, 10**7) | not_durations,
    "section": st.one_of(text, st.integers(), st.booleans(), st.lists(st.integers(), max_size=2)),
}
FIELDS: dict[tuple[str, str], str] = {
    ("", "name"): "name",
    ("", "type"): "choice",
    ("worker", "command"): "command",
    ("worker", "dir"): "path",
    ("worker", "env"): "env",
    ("worker", "requirements"): "text",
    ("worker", "port"): "port",
    ("worker", "health_port"): "port",
    ("compute", "gpu"): "strings",
    ("compute", "gpu_types"): "strings",
    ("compute", "gpus_per_worker"): "count1",
    ("compute", "data_centers"): "strings",
    ("compute", "cuda_versions"): "strings",
    ("compute", "network_volume"): "text",
    ("scaling", "active_workers"): "count0",
    ("scaling", "max_workers"): "count1",  # at least max(active_workers, 1)
    ("scaling", "idle_timeout"): "duration",
    ("scaling", "scaler"): "choice",
    ("scaling", "queue_delay"): "duration",
    ("scaling", "requests_per_worker"): "count1",
    ("scaling", "flashboot"): "bool",
    ("scaling", "init_timeout"): "duration",
    ("jobs", "execution_timeout"): "timeout",
    ("jobs", "ttl"): "ttl",
    ("jobs", "max_retries"): "count0",
    ("model", "source"): "model_source",
    ("model", "revision"): "text",
    ("model", "sha256"): "sha256",
    ("model", "preload"): "bool",
    **{("", section): "section" for section in SECTIONS},
}
REQUIRED = {("", "name"), ("", "worker"), ("worker", "command")}
# None first: Hypothesis draws the first choice far more often than the others (about 40% of
# examples here), which makes unmutated tables common, as they should be.
MUTATIONS = [None, *sorted(FIELDS), *((section, "") for section in ("", *SECTIONS))]


Verdicts = dict[tuple[str, str], str]


@st.composite
def mutate(draw: st.DrawFn, data: dict[str, Any], verdicts: Verdicts) -> None:
    """Change `data` in place once, and record in `verdicts` what the parser must now do about
    the key changed: "refuse" (a value the field never takes, an unknown key, a required key
    gone), "accept" (an optional key gone) or "either" (any TOML value)."""
    target = draw(st.sampled_from(MUTATIONS))
    if target is None:
        return
    section, key = target
    if section == "worker" and "worker" not in data:
        return  # deleted by an earlier mutation, which must stay a refusal
    if section and not isinstance(data.setdefault(section, {}), dict):
        return  # an earlier mutation replaced the section: nothing left to change in it
    table = data[section] if section else data
    if key == "":  # a key no section knows
        unknown = "x-" + draw(keys)
        table[unknown] = draw(toml_values)
        verdicts[(section, unknown)] = "refuse"
        return
    if section == "":  # a whole section changes: what was said about its keys is moot
        for moot in [t for t in verdicts if t[0] == key]:
            del verdicts[moot]
    how = draw(st.sampled_from(["refused", "any", "deleted"]))
    if how == "deleted":
        table.pop(key, None)
        verdicts[target] = "refuse" if target in REQUIRED else "accept"
    elif how == "any":
        table[key] = draw(toml_values)
        verdicts[target] = "either"
    else:
        table[key] = draw(REFUSED[FIELDS[target]])
        verdicts[target] = "refuse"


@st.composite
def endpoint_tables(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid table and up to two mutations, with the outcome they call for."""
    data = draw(valid_tables())
    verdicts: Verdicts = {}
    for _ in range(2):
        draw(mutate(data, verdicts))
    worker = data.get("worker")
    if data.get("type") == "load_balancer" and isinstance(worker, dict) and "port" not in worker:
        verdicts[("worker", "port")] = "refuse"  # a load balancer needs the worker's port
    found = set(verdicts.values()) or {"accept"}
    verdict = next(v for v in ("refuse", "either", "accept") if v in found)
    event(f"must {verdict}")
    return data, verdict


# --- the properties ---------------------------------------------------------------------------


def outcome(parse: Any) -> EndpointSpec | str:
    """The spec (without its source path) or the SpecError's message; anything else raises."""
    try:
        spec = parse()
    except SpecError as exc:
        return str(exc)
    assert isinstance(spec, EndpointSpec)
    return dataclasses.replace(spec, source_path=None)


def assert_sound(spec: EndpointSpec) -> None:
    """What every accepted spec promises the rest of runq."""
    assert NAME_PATTERN.fullmatch(spec.name)
    assert spec.type in ENDPOINT_TYPES
    command = spec.worker.command
    assert (command or spec.worker.image) and all("\x00" not in part for part in command)
    assert spec.worker.dir.is_absolute()
    for name, value in spec.worker.env.items():
        assert isinstance(value, str) and "=" not in name and "\x00" not in name + value
    if spec.type == "load_balancer":
        assert spec.worker.port is not None
    scaling, jobs = spec.scaling, spec.jobs
    assert 0 <= scaling.active_workers <= scaling.max_workers and scaling.max_workers >= 1
    assert scaling.scaler in SCALERS
    assert scaling.requests_per_worker >= 1 and spec.compute.gpus_per_worker >= 1
    for seconds in (scaling.idle_timeout_s, scaling.queue_delay_s, scaling.init_timeout_s):
        assert math.isfinite(seconds) and seconds >= 0
    assert math.isfinite(jobs.ttl_s) and jobs.ttl_s >= MIN_TTL_S
    timeout = jobs.execution_timeout_s
    assert timeout is None or 0 < timeout <= MAX_EXECUTION_TIMEOUT_S
    assert jobs.max_retries >= 0


@MORE
@given(endpoint_tables())
def test_a_table_is_refused_naming_the_file_or_accepted_as_a_sound_spec(
    case: tuple[dict[str, Any], str],
) -> None:
    table, verdict = case
    result = outcome(lambda: parse_spec(table, FILE.parent, str(FILE)))
    if isinstance(result, str):
        assert verdict != "accept", f"a valid table was refused: {result}"
        assert result.startswith(f"{FILE}: "), result
    else:
        assert verdict != "refuse", f"accepted: {table!r}"
        assert_sound(result)


@FUZZ
@given(endpoint_tables())
def test_a_table_written_as_toml_parses_the_same(case: tuple[dict[str, Any], str]) -> None:
    table, _ = case
    text = toml_document(table)
    assert outcome(lambda: loads_spec(text, FILE)) == outcome(
        lambda: parse_spec(table, FILE.parent, str(FILE))
    )


@FUZZ
@given(
    st.text(max_size=200)
    | endpoint_tables().map(lambda case: toml_document(case[0]))
    # Cut short: mostly not TOML any more.
    | endpoint_tables().map(lambda case: toml_document(case[0])[:-7])
)
def test_any_text_is_a_spec_or_an_error_naming_the_file(text: str) -> None:
    result = outcome(lambda: loads_spec(text, FILE))
    if isinstance(result, str):
        assert result.startswith(f"{FILE}: "), result


@pytest.mark.parametrize(
    "text",
    [
        'name = "a"\n[worker]\ncommand = ["x"]\n[scaling]\nidle_timeout = ' + "9" * 400,
        'name = "a"\n[worker]\ncommand = ["x"]\n[jobs]\nttl = "' + "9" * 400 + '"',
        'name = "a"\n[worker]\ncommand = ["x"]\ndir = "a\\u0000b"',
        'name = "a"\n[worker]\ncommand = ["x\\u0000"]',
        'name = "a"\n[worker]\ncommand = ["x"]\nenv = { "A=B" = "1" }',
        "max_retries = " + "1" * 5000,
    ],
    ids=[
        "duration-int-past-float-range",
        "duration-string-past-float-range",
        "nul-in-dir",
        "nul-in-command",
        "equals-in-env-name",
        "int-past-python-digit-limit",
    ],
)
def test_found_by_fuzzing_each_is_a_spec_error(text: str) -> None:
    with pytest.raises(SpecError, match=f"^{re.escape(str(FILE))}: "):
        loads_spec(text, FILE)


# --- durations -----------------------------------------------------------------------------


@FUZZ
@given(
    st.text(max_size=20)
    | st.from_regex(r"\A\s*[0-9]{1,20}(\.[0-9]{1,20})?\s*(ms|s|m|h|d)?\s*\Z")
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats()
    | st.none()
    | st.booleans()
)
def test_a_duration_is_finite_seconds_or_a_value_error_quoting_it(value: object) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        assert repr(value) in str(exc)
    else:
        assert isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0


# Found by fuzzing: past a float's range, a string of digits was infinite seconds and an int
# raised OverflowError (through runq.toml's [server] durations too).
@pytest.mark.parametrize("value", ["9" * 400, "1" * 400 + "ms", 10**400], ids=["s", "ms", "int"])
def test_a_duration_past_a_float_range_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_a_dir_that_cannot_be_a_file_name_is_a_spec_error() -> None:
    # Found by hypothesis in CI: a lone surrogate in `dir` made Path.resolve() raise
    # UnicodeEncodeError out of the parser.
    text = 'name = "a"\n[worker]\ncommand = ["x"]\ndir = "' + chr(0xD800) + '"\n'
    result = outcome(lambda: loads_spec(text, FILE))
    assert isinstance(result, str) and "dir" in result
