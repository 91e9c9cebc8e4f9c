"""Every CLI listing at 80 columns keeps its values whole, and `--json` prints its rows."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from runq.cli import tables as cli_tables
from runq.cli.tables import Column, fitted
from tests.conftest import Server
from tests.models.fileserver import FileServer
from tests.test_cli import runq

pytestmark = pytest.mark.timeout(120)

NARROW = {"COLUMNS": "80"}


def readable(text: str) -> None:
    lines = text.splitlines()
    assert lines, "nothing printed"
    assert max(len(line) for line in lines) <= 80, text
    assert "…" not in text, text  # rich marks a value cut short with an ellipsis


def test_every_listing_fits_80_columns_with_whole_values_and_has_json(
    server_factory: Any, tmp_path: Path
) -> None:
    server: Server = server_factory()
    server.add_endpoint("image-generation-sdxl", "native_echo.py")
    server.start()
    env = {"RUNQ_URL": server.url, "RUNQ_API_KEY": server.key}
    body = '{"text": "hi"}'
    assert runq("run", "image-generation-sdxl", body, "--sync", env=env).returncode == 0
    made = runq("keys", "create", "--name", "nightly-ci", "--scope", "admin", env=env)
    assert made.returncode == 0, made.stderr

    listings: dict[str, tuple[str, ...]] = {
        "endpoints": ("endpoints",),
        "workers": ("workers",),
        "keys": ("keys", "ls"),
        "metrics": ("metrics", "image-generation-sdxl"),
    }
    rows: dict[str, Any] = {}
    for name, args in listings.items():
        as_json = runq(*args, "--json", env=env)
        assert as_json.returncode == 0, as_json.stderr
        rows[name] = json.loads(as_json.stdout)
        table = runq(*args, env={**env, **NARROW})
        assert table.returncode == 0, table.stderr
        readable(table.stdout)
        rows[name + " table"] = table.stdout

    (endpoint,) = rows["endpoints"]
    assert endpoint["name"] in rows["endpoints table"]
    assert "1/0/0/0" in rows["endpoints table"]  # workers idle/run/init/throttled
    (worker,) = rows["workers"]
    assert f"{worker['id']} (active)" in rows["workers table"]
    assert "idle" in rows["workers table"]
    for key in rows["keys"]:
        assert key["id"] in rows["keys table"]
    assert rows["metrics"]["jobs"]["completed"] == 1
    assert "execution" in rows["metrics table"]

    with FileServer(
        {"/weights-of-a-model-with-a-long-name.safetensors": b"w" * 64}
    ).running() as files:
        url = f"{files.url}/weights-of-a-model-with-a-long-name.safetensors"
        data = ("--data-dir", str(tmp_path / "data"))
        assert runq("cache", "pull", url, *data).returncode == 0
        (model,) = json.loads(runq("cache", "ls", "--json", *data).stdout)
        table = runq("cache", "ls", *data, env=NARROW)
    assert model["source"] == url
    readable(table.stdout)
    assert "http" in table.stdout and "64 B" in table.stdout


@pytest.mark.parametrize(
    ("width", "shown", "left_out"),
    [
        pytest.param(200, 4, [], id="wide: every column"),
        pytest.param(50, 3, ["note"], id="narrow: the optional column goes, values stay whole"),
    ],
)
def test_a_table_leaves_out_optional_columns_before_it_cuts_a_value(
    width: int, shown: int, left_out: list[str]
) -> None:
    columns = [Column("id"), Column("state"), Column("why", fold=True), Column("note", drop=1)]
    row = ["worker-0123456789", "initializing", "started: queue delay 5.2s > 4s", "x" * 30]
    table, dropped = fitted(Console(width=width), columns, [row])
    assert (len(table.columns), dropped) == (shown, left_out)
    console = Console(width=width, record=True)
    console.print(table)
    text = console.export_text()
    assert "worker-0123456789" in text and "initializing" in text and "…" not in text


def test_the_layout_examples_hold() -> None:
    assert doctest.testmod(cli_tables).failed == 0
