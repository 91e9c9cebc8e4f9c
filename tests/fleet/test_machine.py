"""runq.fleet.machine: this machine as a host (CPU count, NVIDIA GPUs through NVML)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from runq.core.config import ServerConfig, load_config
from runq.core.hosts import Gpu, Host
from runq.fleet.machine import default_cpu_slots, detect_local_hosts, effective_hosts


def test_the_default_cpu_slots_are_four_per_cpu_and_at_least_eight() -> None:
    assert default_cpu_slots() == max(8, 4 * (os.cpu_count() or 4))


def test_server_cpu_slots_sets_the_detected_hosts_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVML: this machine is a CPU pool
    path = tmp_path / "runq.toml"
    path.write_text("[server]\ncpu_slots = 2\n", encoding="utf-8")

    assert effective_hosts(load_config(path)) == (Host("local", cpu_slots=2),)


def fake_nvml(
    names: list[str], fail_at: str = "", memory_bytes: int = 16 * 2**30
) -> types.ModuleType:
    """A stand-in for pynvml: `names` are the devices; `fail_at` names a call that raises."""
    module = types.ModuleType("pynvml")
    calls: list[str] = []

    class NVMLError(Exception):
        pass

    def call(name: str, result: Any = None) -> Any:
        calls.append(name)
        if name == fail_at:
            raise NVMLError(name)
        return result

    module.NVMLError = NVMLError  # type: ignore[attr-defined]
    module.calls = calls  # type: ignore[attr-defined]
    module.nvmlInit = lambda: call("nvmlInit")  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: call("nvmlShutdown")  # type: ignore[attr-defined]
    module.nvmlSystemGetCudaDriverVersion = lambda: call("cuda", 12040)  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: call("count", len(names))  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: call("handle", i)  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda i: call("name", names[i])  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda i: call(  # type: ignore[attr-defined]
        "memory", types.SimpleNamespace(total=memory_bytes)
    )
    return module


def test_without_pynvml_this_machine_is_a_cpu_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError

    assert detect_local_hosts() == (Host("local", cpu_slots=default_cpu_slots()),)


def test_nvml_gpus_become_one_local_host(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml(["NVIDIA L4", "NVIDIA L4", b"Tesla T4"])  # type: ignore[list-item]
    monkeypatch.setitem(sys.modules, "pynvml", nvml)

    (host,) = detect_local_hosts()

    # The T4 is not in the table: its memory is measured, 16 GiB.
    assert host == Host(
        "local",
        cuda_version="12.4",
        gpus=(Gpu("L4", 24, 2), Gpu("Tesla T4", 16, 1)),
        cpu_slots=default_cpu_slots(),
    )
    assert nvml.calls[-1] == "nvmlShutdown"  # type: ignore[attr-defined]


@pytest.mark.parametrize("fail_at", ["nvmlInit", "count", "name"])
def test_an_nvml_error_leaves_a_cpu_pool(monkeypatch: pytest.MonkeyPatch, fail_at: str) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(["NVIDIA L4"], fail_at=fail_at))

    assert detect_local_hosts() == (Host("local", cpu_slots=default_cpu_slots()),)


def test_effective_hosts_are_the_declared_ones_else_the_local_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    declared = (Host("a", cpu_slots=2),)

    assert effective_hosts(ServerConfig(hosts=declared)) == declared
    assert effective_hosts(ServerConfig()) == (Host("local", cpu_slots=default_cpu_slots()),)
