"""Worker bundles: `runq bundle build` makes a venv from the requirements once, reuses it while
they are unchanged, and `runq serve` runs the worker on it with its baked model in place.
Packages come from a wheel made in the test (`--no-index --find-links`): nothing is downloaded."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from runq.bundles import bundle_for
from runq.core.spec import load_spec
from tests.conftest import Server

pytestmark = pytest.mark.timeout(90)

HANDLER = """
import sys
import tinydep
from runq import worker

MODEL = worker.model_path().read_bytes()

def handler(job):
    return {"value": tinydep.VALUE, "prefix": sys.prefix, "model": MODEL.decode(),
            "model_path": str(worker.model_path())}

worker.start({"handler": handler})
"""

ENDPOINT = """
name = "bundled"
[worker]
command = ["python", "handler.py"]
requirements = "requirements.txt"
[scaling]
active_workers = 1
max_workers = 1
[model]
source = "weights/model.bin"
"""


def make_wheel(folder: Path, name: str = "tinydep", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel holding `{name}.py` with VALUE = 42."""
    files = {
        f"{name}.py": b"VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        ),
        f"{name}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: runq-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record_name = f"{name}-{version}.dist-info/RECORD"
    lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(data)}")
    files[record_name] = ("\n".join([*lines, f"{record_name},,"]) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def runq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runq.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    (folder / "weights").mkdir(parents=True)
    (folder / "handler.py").write_text(HANDLER)
    (folder / "requirements.txt").write_text("tinydep==1.0\n")
    (folder / "endpoint.toml").write_text(ENDPOINT)
    (folder / "weights" / "model.bin").write_text("baked weights")
    return folder


def test_a_bundle_is_built_once_and_its_worker_runs_on_it(
    bundle_dir: Path, server_factory: object
) -> None:
    server: Server = server_factory()  # type: ignore[operator]
    wheels = bundle_dir.parent / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    data = str(server.data_dir)
    pip = ("--find-links", str(wheels), "--no-index")

    first = runq("bundle", "build", str(bundle_dir), "--data-dir", data, *pip)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "built" in first.stdout
    again = runq("bundle", "build", str(bundle_dir), "--data-dir", data, *pip)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout

    server.endpoints.append(bundle_dir / "endpoint.toml")
    server.start(wait_workers=False)
    server.wait_workers("bundled", 1)
    reply = server.post("/v2/bundled/runsync", json={"input": {}}).json()
    assert reply["status"] == "COMPLETED", reply
    output = reply["output"]
    assert output["value"] == 42  # installed in the bundle's venv only
    assert Path(output["prefix"]).parent == server.data_dir / "bundles"
    # The baked model is used where it is, inside the worker's folder: no copy.
    assert output["model"] == "baked weights"
    assert Path(output["model_path"]) == bundle_dir / "weights" / "model.bin"


def test_changed_requirements_make_a_new_venv(bundle_dir: Path, tmp_path: Path) -> None:
    spec = load_spec(bundle_dir)
    before = bundle_for(spec, tmp_path)
    (bundle_dir / "requirements.txt").write_text("tinydep==2.0\n")
    after = bundle_for(spec, tmp_path)
    assert before is not None and after is not None
    assert before.venv != after.venv and before.venv.parent == after.venv.parent


def test_two_endpoints_with_the_same_requirements_share_one_venv_built_once(
    bundle_dir: Path, tmp_path: Path
) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "requirements.txt").write_text((bundle_dir / "requirements.txt").read_text())
    (twin / "endpoint.toml").write_text(ENDPOINT.replace('name = "bundled"', 'name = "twin"'))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    common = ("--data-dir", str(tmp_path / "data"), "--find-links", str(wheels), "--no-index")

    first = runq("bundle", "build", str(bundle_dir), *common)
    second = runq("bundle", "build", str(twin), *common)

    assert first.returncode == 0 and "built" in first.stdout, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert "up to date" in second.stdout  # a cache hit: nothing installed again
    venvs = [bundle_for(load_spec(folder), tmp_path / "data") for folder in (bundle_dir, twin)]
    assert venvs[0] is not None and venvs[1] is not None
    assert venvs[0].venv == venvs[1].venv


@pytest.mark.parametrize(
    ("endpoint", "needle"),
    [
        (ENDPOINT.replace("requirements.txt", "missing.txt"), "no such file"),
        (ENDPOINT.replace('requirements = "requirements.txt"\n', ""), "no [worker] requirements"),
    ],
    ids=["missing-requirements-file", "no-requirements"],
)
def test_bundle_build_names_what_is_wrong(bundle_dir: Path, endpoint: str, needle: str) -> None:
    (bundle_dir / "endpoint.toml").write_text(endpoint)
    done = runq("bundle", "build", str(bundle_dir), "--data-dir", str(bundle_dir / "data"))
    assert done.returncode == 2
    assert needle in done.stderr and "bundled" in done.stderr, done.stderr


def test_a_failing_pip_install_is_reported_with_pips_output(bundle_dir: Path) -> None:
    (bundle_dir / "requirements.txt").write_text("no-such-package-runq==1.0\n")
    done = runq(
        "bundle", "build", str(bundle_dir), "--data-dir", str(bundle_dir / "data"), "--no-index"
    )
    assert done.returncode == 1
    assert "no-such-package-runq" in done.stderr and "requirements.txt" in done.stderr


BAKE = """
import sys
from pathlib import Path

import tinydep  # the build step runs on the bundle's venv

Path("weights").mkdir(exist_ok=True)
Path("weights/model.bin").write_text(f"baked by {sys.prefix} with {tinydep.VALUE}")
"""


def test_the_build_step_bakes_once_on_the_venv(bundle_dir: Path) -> None:
    (bundle_dir / "weights" / "model.bin").unlink()
    (bundle_dir / "bake.py").write_text(BAKE)
    endpoint = ENDPOINT.replace(
        'requirements = "requirements.txt"\n',
        'requirements = "requirements.txt"\nbuild = ["python", "bake.py"]\n',
    )
    (bundle_dir / "endpoint.toml").write_text(endpoint)
    wheels = bundle_dir.parent / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    args = ("bundle", "build", str(bundle_dir), "--data-dir", str(bundle_dir.parent / "data"))
    pip = ("--find-links", str(wheels), "--no-index")
    baked = bundle_dir / "weights" / "model.bin"

    first = runq(*args, *pip)
    assert first.returncode == 0, first.stdout + first.stderr
    venv = bundle_for(load_spec(bundle_dir), bundle_dir.parent / "data")
    assert venv is not None
    assert baked.read_text() == f"baked by {venv.venv} with 42"

    baked.unlink()  # unchanged requirements and step: nothing runs again...
    assert "up to date" in runq(*args, *pip).stdout
    assert not baked.exists()
    forced = runq(*args, *pip, "--force")  # ...unless asked
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert baked.read_text().endswith("with 42")


def test_a_build_step_needs_requirements(bundle_dir: Path) -> None:
    endpoint = ENDPOINT.replace(
        'requirements = "requirements.txt"\n', 'build = ["python", "bake.py"]\n'
    )
    (bundle_dir / "endpoint.toml").write_text(endpoint)
    done = runq("bundle", "build", str(bundle_dir), "--data-dir", str(bundle_dir / "data"))
    assert done.returncode == 2
    assert "build" in done.stderr and "declare requirements" in done.stderr, done.stderr


IMAGE_BUILD = 'name = "baked"\n[worker]\n[worker.container]\nbuild = "Containerfile"\n'


@pytest.mark.parametrize(
    ("endpoint", "args", "needle"),
    [
        pytest.param(
            ENDPOINT, ("--build-arg", "BASE=x"), "builds no image", id="a venv bundle: no ARGs"
        ),
        pytest.param(
            IMAGE_BUILD, ("--build-arg", "BASE"), "'BASE': expected KEY=VALUE", id="no '='"
        ),
    ],
)
def test_build_args_are_for_image_builds_and_read_as_key_value(
    bundle_dir: Path, endpoint: str, args: tuple[str, ...], needle: str
) -> None:
    (bundle_dir / "endpoint.toml").write_text(endpoint)
    done = runq("bundle", "build", str(bundle_dir), *args, "--data-dir", str(bundle_dir / "data"))
    assert done.returncode == 2
    assert needle in done.stderr and "--build-arg" in done.stderr, done.stderr
