"""runpod 1.7.12-1.10 keeps the jobs a worker holds in `.runpod_jobs.pkl` in its working
directory. With one folder shared by every worker, the worker after a crash or a
`refresh_worker` loaded its predecessor's jobs, counted itself full and never took work again.
Each worker has a folder of its own: the next jobs complete. An unmodified runpod 1.7.13 worker,
in a bundle whose requirements pin it."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from runq.bundles import build, bundle_for
from runq.core.spec import load_spec
from tests.conftest import Server, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WORKER = Path(__file__).parents[1] / "workers" / "runpod-1.7"


def _complete(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    job = server.run("legacy", {"input": body})
    return server.wait_status("legacy", job, {"COMPLETED"}, timeout=60)


def test_runpod_1_7_worker_after_a_crash_and_a_refresh(server_factory: Any) -> None:
    server: Server = server_factory()
    folder = server.root / "legacy"
    shutil.copytree(WORKER, folder)
    path = server.add_endpoint_text(
        "legacy",
        f'name = "legacy"\n[worker]\ndir = "{folder}"\ncommand = ["python", "handler.py"]\n'
        'requirements = "requirements.txt"\n[scaling]\nactive_workers = 1\nmax_workers = 1\n',
    )
    # Only runpod itself goes into the bundle: its dependencies come from runq's environment
    # (the bundle sees it after its own packages), which keeps this test fast and offline-safe.
    bundle = bundle_for(load_spec(path), server.data_dir)
    assert bundle is not None
    build(bundle, pip_args=["--no-deps"])
    site = next(bundle.venv.glob("lib/python*/site-packages"))
    (site / "zz_runq_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    server.start()
    wait_until(lambda: server.workers("legacy")[0]["runpod_version"] == "1.7.13", timeout=30)

    crashed = _complete(server, {"crash_once": str(server.root / "crashed")})
    assert (server.root / "crashed").exists(), "the first try did not crash"
    assert crashed["output"]["ok"]
    for _ in range(3):
        assert _complete(server, {})["output"]["ok"]
    before = {w["id"] for w in server.workers("legacy")}
    assert "refreshed" in str(_complete(server, {"refresh": True})["output"])
    for _ in range(3):
        assert _complete(server, {})["output"]["ok"]
    after = {w["id"] for w in server.workers("legacy")}
    assert after and not after & before, "refresh_worker did not replace the worker"
    assert not (folder / ".runpod_jobs.pkl").exists(), "a worker wrote into the shared folder"
