"""Endpoint files, durations and the server config: what users type, and the errors they see."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from runq.core.config import ServerConfig, load_config
from runq.core.durations import parse_duration
from runq.core.spec import (
    ComputeSection,
    JobsSection,
    ModelSection,
    ScalingSection,
    WorkerSection,
    load_spec,
    loads_spec,
)
from runq.errors import SpecError

MINIMAL = """
name = "echo"
[worker]
command = ["python", "handler.py"]
"""

# Every section and key of the endpoint file (shared/spec/endpoint.md), with values that
# differ from the defaults so that each one is seen to be read.
FULL = """
name = "sd-xl-2"
type = "load_balancer"

[worker]
command = ["python", "-m", "server"]
dir = "app"
env = { LOG_LEVEL = "debug", HF_HOME = "/cache" }
requirements = "requirements.txt"
port = 8080
health_port = 8081

[compute]
gpu = ["24GB", "48GB"]
gpu_types = ["L4", "A5000"]
gpus_per_worker = 2
data_centers = ["home"]
cuda_versions = ["12.4"]
network_volume = "models"

[scaling]
active_workers = 1
max_workers = 5
idle_timeout = "30s"
scaler = "request_count"
queue_delay = "1500ms"
requests_per_worker = 8
flashboot = false
init_timeout = "10m"

[jobs]
execution_timeout = "2h"
ttl = "1h"
max_retries = 0
max_queue = 500

[model]
source = "https://example.com/model.safetensors"
revision = "main"
sha256 = "abababababababababababababababababababababababababababababababab"
preload = true
"""


def write_spec(tmp_path: Path, text: str, name: str = "endpoint.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def spec_text(**sections: str) -> str:
    """MINIMAL with lines added: `top` at the top level, any other key as a [section]."""
    top = sections.pop("top", "")
    worker = sections.pop("worker", "")
    text = f'{top}\nname = "echo"\n' if "name" not in top else f"{top}\n"
    text += f'[worker]\ncommand = ["python", "handler.py"]\n{worker}\n'
    for section, body in sections.items():
        text += f"[{section}]\n{body}\n"
    return text


# --- valid files ----------------------------------------------------------------------------


def test_a_full_file_sets_every_field(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    path = write_spec(tmp_path, FULL)

    spec = load_spec(path)

    assert (spec.name, spec.type, spec.source_path) == ("sd-xl-2", "load_balancer", path.resolve())
    assert spec.worker == WorkerSection(
        command=("python", "-m", "server"),
        dir=(tmp_path / "app").resolve(),
        env={"LOG_LEVEL": "debug", "HF_HOME": "/cache"},
        requirements="requirements.txt",
        port=8080,
        health_port=8081,
    )
    assert spec.compute == ComputeSection(
        gpu=("24GB", "48GB"),
        gpu_types=("L4", "A5000"),
        gpus_per_worker=2,
        data_centers=("home",),
        cuda_versions=("12.4",),
        network_volume="models",
    )
    assert spec.scaling == ScalingSection(
        active_workers=1,
        max_workers=5,
        idle_timeout_s=30.0,
        scaler="request_count",
        queue_delay_s=1.5,
        requests_per_worker=8,
        flashboot=False,
        init_timeout_s=600.0,
    )
    assert spec.jobs == JobsSection(
        execution_timeout_s=7200.0, ttl_s=3600.0, max_retries=0, max_queue=500
    )
    assert spec.model == ModelSection(
        source="https://example.com/model.safetensors",
        revision="main",
        sha256="ab" * 32,
        preload=True,
    )


def test_a_minimal_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, MINIMAL))

    assert spec.type == "queue"
    assert spec.worker == WorkerSection(command=("python", "handler.py"), dir=tmp_path.resolve())
    assert (spec.worker.port, spec.worker.health_port, spec.worker.requirements) == (None,) * 3
    assert spec.compute == ComputeSection(gpu=("cpu",))
    assert spec.scaling == ScalingSection(
        active_workers=0,
        max_workers=3,
        idle_timeout_s=5.0,
        scaler="queue_delay",
        queue_delay_s=4.0,
        requests_per_worker=4,
        flashboot=True,
        init_timeout_s=420.0,
    )
    assert spec.jobs == JobsSection(
        execution_timeout_s=600.0, ttl_s=86400.0, max_retries=3, max_queue=0
    )
    assert spec.model is None


def test_a_health_port_defaults_to_the_worker_port(tmp_path: Path) -> None:
    spec = load_spec(
        write_spec(tmp_path, spec_text(top='type = "load_balancer"', worker="port = 9000"))
    )

    assert (spec.worker.port, spec.worker.health_port) == (9000, 9000)


def test_a_directory_means_its_endpoint_toml(tmp_path: Path) -> None:
    path = write_spec(tmp_path, MINIMAL)

    spec = load_spec(tmp_path)

    assert spec.name == "echo"
    assert spec.source_path == path.resolve()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param('"0"', None, id="the string zero turns the execution timeout off"),
        pytest.param("0", None, id="the number zero turns it off too"),
        pytest.param('"24h"', 86400.0, id="24 hours is the largest allowed"),
        pytest.param("90", 90.0, id="a bare number is seconds"),
    ],
)
def test_execution_timeout_values(tmp_path: Path, value: str, seconds: float | None) -> None:
    spec = loads_spec(spec_text(jobs=f"execution_timeout = {value}"), tmp_path / "e.toml")

    assert spec.jobs.execution_timeout_s == seconds


def test_loads_spec_resolves_the_worker_dir_against_the_named_file(tmp_path: Path) -> None:
    spec = loads_spec(spec_text(worker='dir = "../w"'), tmp_path / "sub" / "endpoint.toml")

    assert spec.worker.dir == (tmp_path / "w").resolve()
    assert spec.source_path == tmp_path / "sub" / "endpoint.toml"


# --- invalid files --------------------------------------------------------------------------

INVALID = [
    pytest.param(spec_text(top='colour = "red"'), "colour", id="an unknown top-level key"),
    pytest.param(spec_text(scaling="max_worker = 3"), "scaling.max_worker", id="a misspelt key"),
    pytest.param(spec_text(model='url = "hf://x"'), "model.url", id="an unknown key in model"),
    pytest.param(spec_text(top='name = "Echo_1"'), "name", id="a name with capitals"),
    pytest.param(spec_text(top='name = ""'), "name", id="an empty name"),
    pytest.param(spec_text(top=f'name = "{"a" * 65}"'), "name", id="a name over 64 characters"),
    pytest.param(spec_text(top='name = "-echo"'), "name", id="a name starting with a dash"),
    pytest.param(
        spec_text(top='name = "echo\\n"'),
        "name",
        id="a name with a trailing newline",
    ),
    pytest.param('[worker]\ncommand = ["python", "h.py"]\n', "name", id="no name at all"),
    pytest.param(spec_text(top='type = "batch"'), "type", id="an unknown endpoint type"),
    pytest.param(
        spec_text(scaling="active_workers = 4\nmax_workers = 3"),
        "scaling.max_workers",
        id="max_workers below active_workers",
    ),
    pytest.param(
        spec_text(scaling="max_workers = 0"), "scaling.max_workers", id="max_workers of zero"
    ),
    pytest.param(
        spec_text(scaling='max_workers = "3"'), "scaling.max_workers", id="a number as a string"
    ),
    pytest.param(spec_text(scaling='scaler = "magic"'), "scaling.scaler", id="an unknown scaler"),
    pytest.param(
        spec_text(scaling='flashboot = "yes"'), "scaling.flashboot", id="a string for a bool"
    ),
    pytest.param(
        spec_text(scaling='idle_timeout = "5 minutes"'),
        "scaling.idle_timeout",
        id="a duration with an unknown unit",
    ),
    pytest.param(
        spec_text(scaling="idle_timeout = -1"), "scaling.idle_timeout", id="a negative duration"
    ),
    pytest.param(spec_text(jobs='ttl = "9s"'), "jobs.ttl", id="a ttl below 10s"),
    pytest.param(
        spec_text(jobs='execution_timeout = "25h"'),
        "jobs.execution_timeout",
        id="an execution timeout over 24h",
    ),
    pytest.param(
        spec_text(jobs="max_retries = true"), "jobs.max_retries", id="a bool for a number"
    ),
    pytest.param(spec_text(jobs="max_retries = -1"), "jobs.max_retries", id="negative max_retries"),
    pytest.param(spec_text(jobs="max_queue = -1"), "jobs.max_queue", id="a negative max_queue"),
    pytest.param(spec_text(jobs="max_queue = 2.5"), "jobs.max_queue", id="a fractional max_queue"),
    pytest.param(
        'name = "echo"\n[worker]\ncommand = 5\n', "worker.command", id="a command that is a number"
    ),
    pytest.param(
        'name = "echo"\n[worker]\ncommand = ["python", 3]\n',
        "worker.command",
        id="a command with a non-string part",
    ),
    pytest.param(
        'name = "echo"\n[worker]\ncommand = []\n', "worker.command", id="an empty command"
    ),
    pytest.param('name = "echo"\n[worker]\n', "worker.command", id="a worker without a command"),
    pytest.param(
        spec_text(worker="env = { DEBUG = 1 }"), "worker.env", id="a non-string env value"
    ),
    pytest.param('name = "echo"\n', "worker", id="no worker table"),
    pytest.param(
        spec_text(top='type = "load_balancer"'),
        "worker.port",
        id="a load balancer without a worker port",
    ),
    pytest.param(spec_text(compute='gpu = "24GB"'), "compute.gpu", id="a gpu that is not a list"),
    pytest.param(
        spec_text(compute="gpus_per_worker = 0"),
        "compute.gpus_per_worker",
        id="zero gpus per worker",
    ),
    pytest.param(spec_text(top="jobs = 5"), "jobs", id="a section that is not a table"),
    # Upper bounds (README, "Describe an endpoint"): each field refuses one past its bound.
    pytest.param(
        spec_text(scaling="max_workers = 1e30"), "scaling.max_workers", id="a float max_workers"
    ),
    pytest.param(
        spec_text(scaling=f"max_workers = {10**30}"),
        "scaling.max_workers",
        id="max_workers of 10^30",
    ),
    pytest.param(
        spec_text(scaling="max_workers = 1001"), "scaling.max_workers", id="max_workers over 1000"
    ),
    pytest.param(
        spec_text(scaling="active_workers = 1001\nmax_workers = 1001"),
        "scaling.active_workers",
        id="active_workers over 1000",
    ),
    pytest.param(
        spec_text(scaling="requests_per_worker = 10001"),
        "scaling.requests_per_worker",
        id="requests_per_worker over 10000",
    ),
    pytest.param(
        spec_text(compute="gpus_per_worker = 65"),
        "compute.gpus_per_worker",
        id="gpus_per_worker over 64",
    ),
    pytest.param(spec_text(jobs="max_retries = 101"), "jobs.max_retries", id="max_retries > 100"),
    pytest.param(
        spec_text(jobs=f"max_queue = {10**9 + 1}"), "jobs.max_queue", id="max_queue over 10^9"
    ),
    pytest.param(spec_text(jobs='ttl = "8d"'), "jobs.ttl", id="a ttl over 7 days"),
    pytest.param(
        spec_text(scaling='idle_timeout = "169h"'),
        "scaling.idle_timeout",
        id="a duration over 7 days",
    ),
    pytest.param(spec_text(worker="port = 0"), "worker.port", id="port 0"),
    pytest.param(spec_text(worker="port = 65536"), "worker.port", id="a port over 65535"),
    pytest.param(
        spec_text(worker="health_port = -1"), "worker.health_port", id="a negative health port"
    ),
]


def test_the_upper_bounds_themselves_are_accepted(tmp_path: Path) -> None:
    text = spec_text(
        scaling="active_workers = 1000\nmax_workers = 1000\nrequests_per_worker = 10000\n"
        'idle_timeout = "7d"',
        jobs=f'max_retries = 100\nmax_queue = {10**9}\nttl = "7d"',
        compute="gpus_per_worker = 64",
        worker="port = 65535",
    )

    spec = load_spec(write_spec(tmp_path, text))

    assert (spec.scaling.max_workers, spec.jobs.max_queue, spec.worker.port) == (
        1000,
        10**9,
        65535,
    )


@pytest.mark.parametrize(("text", "field"), INVALID)
def test_an_invalid_file_names_the_file_and_the_field(
    tmp_path: Path, text: str, field: str
) -> None:
    path = write_spec(tmp_path, text)

    with pytest.raises(SpecError) as raised:
        load_spec(path)

    message = str(raised.value)
    assert message.startswith(f"{path.resolve()}: ")
    assert f"field '{field}'" in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param('name = "echo\n[worker', "not valid TOML", id="a file that is not TOML"),
        pytest.param("\x00\x01", "not valid TOML", id="a binary file"),
        # Found by abuse (issue 15): tomllib recurses once per level, and its RecursionError
        # was a 500 on POST /admin/endpoints.
        pytest.param(
            "a = " + "[" * 5000 + "]" * 5000, "nested too deeply", id="arrays nested 5000 deep"
        ),
        pytest.param(
            "a = " + "{b = " * 5000 + "1" + "}" * 5000,
            "nested too deeply",
            id="inline tables nested 5000 deep",
        ),
        pytest.param("a = " + "9" * 5000, "4300 digits", id="an integer of 5000 digits"),
    ],
)
def test_a_file_that_is_not_toml_names_the_file(tmp_path: Path, text: str, says: str) -> None:
    path = write_spec(tmp_path, text)

    with pytest.raises(SpecError, match=says) as raised:
        load_spec(path)

    assert str(raised.value).startswith(f"{path.resolve()}: ")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("missing.toml", id="a missing file"),
        pytest.param("empty-dir", id="a directory without endpoint.toml"),
    ],
)
def test_a_missing_file_names_the_path(tmp_path: Path, name: str) -> None:
    (tmp_path / "empty-dir").mkdir()

    with pytest.raises(SpecError, match="no such endpoint file") as raised:
        load_spec(tmp_path / name)

    assert str(tmp_path.resolve() / name) in str(raised.value)


# --- durations ------------------------------------------------------------------------------

DURATIONS = [
    pytest.param("5s", 5.0, id="seconds"),
    pytest.param("250ms", 0.25, id="milliseconds"),
    pytest.param("7m", 420.0, id="minutes"),
    pytest.param("2h", 7200.0, id="hours"),
    pytest.param("1d", 86400.0, id="days"),
    pytest.param("1.5h", 5400.0, id="a fraction with a unit"),
    pytest.param("30", 30.0, id="a string without a unit is seconds"),
    pytest.param(" 5 s ", 5.0, id="spaces around and inside are allowed"),
    pytest.param(90, 90.0, id="an integer is seconds"),
    pytest.param(0.5, 0.5, id="a float is seconds"),
    pytest.param(0, 0.0, id="zero"),
]


@pytest.mark.parametrize(("value", "seconds"), DURATIONS)
def test_parse_duration_reads(value: object, seconds: float) -> None:
    parsed = parse_duration(value)

    assert parsed == seconds
    assert isinstance(parsed, float)


BAD_DURATIONS = [
    pytest.param("5 minutes", id="a unit spelt out"),
    pytest.param("5S", id="a unit in capitals"),
    pytest.param("-5s", id="a negative string"),
    pytest.param(-1, id="a negative number"),
    pytest.param("", id="an empty string"),
    pytest.param("s", id="a unit without a number"),
    pytest.param("1e3", id="scientific notation"),
    pytest.param(".5s", id="a fraction without a leading digit"),
    pytest.param(True, id="a bool"),
    pytest.param(None, id="nothing"),
    pytest.param([5], id="a list"),
    pytest.param(
        math.nan,
        id="not a number",
    ),
]


@pytest.mark.parametrize("value", BAD_DURATIONS)
def test_parse_duration_refuses_and_quotes_the_value(value: object) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(value)

    assert repr(value) in str(raised.value)


# --- server config --------------------------------------------------------------------------


def test_no_config_file_gives_the_defaults() -> None:
    assert load_config(None) == ServerConfig()


def test_a_config_file_sets_fields_and_parses_durations(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        '[server]\nhost = "0.0.0.0"\nport = 9000\nheartbeat_timeout = "20s"\ntick = "250ms"\n'
        'ping_interval = 2\nwebhook_backoff = "1m"\nwebhook_attempts = 5\n'
        f'data_dir = "{tmp_path / "data"}"\n',
        "runq.toml",
    )

    config = load_config(path)

    assert (config.host, config.port, config.webhook_attempts) == ("0.0.0.0", 9000, 5)
    assert (config.heartbeat_timeout_s, config.tick_s, config.ping_interval_s) == (20.0, 0.25, 2.0)
    assert config.webhook_backoff_s == 60.0
    assert config.header_timeout_s == 20.0  # the default, unless set
    assert config.rate_limit == 0.0  # off unless set
    assert config.database_path == (tmp_path / "data" / "runq.db").resolve()
    assert config.base_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(("text", "rate"), [("5", 5.0), ("0.5", 0.5), ("0", 0.0)])
def test_rate_limit_is_requests_per_second_per_key(tmp_path: Path, text: str, rate: float) -> None:
    path = write_spec(tmp_path, f"[server]\nrate_limit = {text}\n", "runq.toml")

    assert load_config(path).rate_limit == rate


def test_flags_override_the_file_and_unset_flags_do_not(tmp_path: Path) -> None:
    path = write_spec(tmp_path, '[server]\nhost = "10.0.0.1"\nport = 9000\n', "runq.toml")

    config = load_config(path, {"port": 9100, "host": None, "tick": "1s"})

    assert (config.host, config.port, config.tick_s) == ("10.0.0.1", 9100, 1.0)


def test_hosts_and_prices_tables_are_accepted(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path, '[[hosts]]\nname = "local"\n[prices]\n[server]\nport = 8001\n', "runq.toml"
    )

    assert load_config(path).port == 8001


BAD_CONFIGS = [
    pytest.param("[serve]\nport = 1\n", "'serve'", id="an unknown table names it"),
    pytest.param('colour = "red"\n', "'colour'", id="an unknown top-level key names it"),
    pytest.param("[server]\nprot = 1\n", "'server.prot'", id="an unknown server key names it"),
    pytest.param('[server]\ntick = "fast"\n', "'server.tick'", id="a bad duration names it"),
    pytest.param('[server]\nport = "80"\n', "'server.port'", id="a string port names it"),
    pytest.param("[server]\nport = true\n", "'server.port'", id="a bool port names it"),
    pytest.param("[server]\nrate_limit = -1\n", "'server.rate_limit'", id="a negative rate"),
    pytest.param('[server]\nrate_limit = "5"\n', "'server.rate_limit'", id="a string rate"),
    pytest.param("[server]\nrate_limit = true\n", "'server.rate_limit'", id="a bool rate"),
    pytest.param("[server\n", "not valid TOML", id="a file that is not TOML"),
    pytest.param(
        "[server]\nx = " + "[" * 5000 + "]" * 5000,
        "nested too deeply",
        id="arrays nested 5000 deep",
    ),
    pytest.param(
        "[server]\nheader_timeout = 0\n", "'server.header_timeout'", id="a zero header timeout"
    ),
    pytest.param(
        '[server]\nheader_timeout = "2h"\n',
        "'server.header_timeout'",
        id="a header timeout over an hour",
    ),
    pytest.param(
        '[server]\ntick_s = "fast"\n',
        "'server.tick_s'",
        id="an internal field name with a bad value names it",
    ),
    pytest.param(
        "server = 5\n",
        "'server'",
        id="a server key that is not a table names it",
    ),
]


@pytest.mark.parametrize(("text", "says"), BAD_CONFIGS)
def test_a_bad_config_file_names_the_file_and_the_problem(
    tmp_path: Path, text: str, says: str
) -> None:
    path = write_spec(tmp_path, text, "runq.toml")

    with pytest.raises(SpecError) as raised:
        load_config(path)

    assert str(path) in str(raised.value)
    assert says in str(raised.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such config file"):
        load_config(tmp_path / "runq.toml")


def test_a_bad_flag_is_reported_as_a_flag() -> None:
    overrides: dict[str, Any] = {"heartbeat_timeout": "soon"}

    with pytest.raises(SpecError, match=r"^flags: field 'server.heartbeat_timeout'"):
        load_config(None, overrides)
