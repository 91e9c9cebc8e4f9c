"""This machine as runq sees it: its CPU count and its NVIDIA GPUs (NVML).

`runq.core.hosts` holds the values and the parsing; everything that looks at the machine lives
here, in the fleet, so core stays pure.
"""

from __future__ import annotations

import contextlib
import os

from runq.core.config import ServerConfig
from runq.core.hosts import (
    MIN_CPU_SLOTS,
    Gpu,
    Host,
    category_of,
    cuda_version_string,
    gpu_type_from_name,
    group_gpus,
)

FALLBACK_CPUS = 4  # when os.cpu_count() cannot tell


def default_cpu_slots() -> int:
    """CPU workers a host takes when the config does not say: four per CPU of this machine, at
    least 8. CPU workers are mostly development stand-ins or I/O-bound handlers that sleep
    while they wait: one per core would throttle a laptop's test fleet for no reason."""
    return max(MIN_CPU_SLOTS, 4 * (os.cpu_count() or FALLBACK_CPUS))


def detect_local_hosts(cpu_slots: int | None = None) -> tuple[Host, ...]:
    """This machine as one host named "local": its NVIDIA GPUs through NVML, or a CPU pool.

    NVML comes from the optional `pynvml` module (`pip install runq[gpu]`); without it, or when
    NVML fails (no driver, no device), the machine is a CPU pool. Either way it takes
    `cpu_slots` CPU workers (`[server] cpu_slots`), by default `default_cpu_slots()`.
    """
    gpus, cuda_version = _nvml_gpus()
    slots = default_cpu_slots() if cpu_slots is None else cpu_slots
    return (Host("local", cuda_version=cuda_version, gpus=gpus, cpu_slots=slots),)


def _nvml_gpus() -> tuple[tuple[Gpu, ...], str]:
    try:
        import pynvml
    except ImportError:
        return (), ""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return (), ""
    try:
        cuda_version = cuda_version_string(int(pynvml.nvmlSystemGetCudaDriverVersion()))
        devices: list[tuple[str, int]] = []
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            raw_name = pynvml.nvmlDeviceGetName(handle)  # bytes in nvidia-ml-py < 11.515
            name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
            gpu_type = gpu_type_from_name(name)
            category = category_of(gpu_type)
            if category is not None:
                memory_gb = category.memory_gb
            else:
                memory_gb = round(int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) / 2**30)
            devices.append((gpu_type, memory_gb))
        return group_gpus(devices), cuda_version
    except pynvml.NVMLError:
        return (), ""
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def effective_hosts(config: ServerConfig) -> tuple[Host, ...]:
    """The hosts the config declares, or, when it declares none, this machine as detected."""
    return config.hosts or detect_local_hosts(config.cpu_slots)
