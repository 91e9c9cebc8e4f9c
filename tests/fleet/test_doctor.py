"""`runq doctor` and the refusal of an image endpoint on a host without a container engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runq.fleet.doctor import CdiSpec, cdi_specs, parse_cdi

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'cdiVersion: "0.5.0"\nkind: "nvidia.com/gpu"\ndevices: []\n',
            ((0, 5, 0), "nvidia.com/gpu"),
            id="YAML with quoted values",
        ),
        pytest.param(
            "cdiVersion: 0.8.0\nkind: nvidia.com/gpu\n",
            ((0, 8, 0), "nvidia.com/gpu"),
            id="YAML as nvidia-ctk writes it (a version podman 4 rejects)",
        ),
        pytest.param(
            '{"cdiVersion": "0.6.0", "kind": "vendor.com/fpga", "devices": []}',
            ((0, 6, 0), "vendor.com/fpga"),
            id="JSON",
        ),
        pytest.param("devices: []\n", None, id="not a CDI spec"),
    ],
)
def test_cdi_specs_are_read_without_a_yaml_parser(
    text: str, expected: tuple[tuple[int, ...], str] | None
) -> None:
    spec = parse_cdi(Path("x.yaml"), text)

    assert (spec and (spec.version, spec.kind)) == expected


def test_cdi_specs_are_found_in_each_folder(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nvidia.yaml").write_text('cdiVersion: "0.5.0"\nkind: nvidia.com/gpu\n')
    (tmp_path / "etc" / "notes.txt").write_text("cdiVersion: 1\nkind: x\n")

    found = cdi_specs((tmp_path / "etc", tmp_path / "missing"))

    assert found == [CdiSpec(tmp_path / "etc" / "nvidia.yaml", (0, 5, 0), "nvidia.com/gpu")]


def runq(*args: str, path: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "runq.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def test_doctor_without_an_engine_fails_and_says_how_to_install_one(tmp_path: Path) -> None:
    done = runq("doctor", "--data-dir", str(tmp_path), path=str(tmp_path), cwd=tmp_path)

    assert done.returncode == 1
    assert "podman: not found on PATH" in done.stdout
    assert "apt-get install podman runc catatonit" in done.stdout


def test_an_image_endpoint_is_refused_where_no_engine_runs(tmp_path: Path) -> None:
    spec = tmp_path / "img.toml"
    spec.write_text('name = "img"\n[worker]\nimage = "localhost/echo:v1"\n')

    done = runq("serve", str(spec), "--data-dir", str(tmp_path), path=str(tmp_path), cwd=tmp_path)

    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert f"{spec}: field 'worker.image': no usable container engine" in message
    assert "apt-get install podman" in message
