"""Hosts and GPUs: the GPU category table, prices, `[[hosts]]`/`[prices]` parsing.

Everything here is a frozen value or a pure function: looking at the machine (CPU count, NVML)
is `runq.fleet.machine`'s job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from runq.core.spec import _Reader
from runq.errors import SpecError

HOST_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CUDA_VERSION_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# CPU workers a host takes when neither its table nor the caller says: the least that
# `runq.fleet.machine.default_cpu_slots()` gives on any machine.
MIN_CPU_SLOTS = 8


@dataclass(frozen=True)
class GpuCategory:
    """A RunPod GPU category: the types in it, their memory and the per-second price per GPU."""

    name: str
    types: tuple[str, ...]
    memory_gb: int
    flex_per_s: float
    active_per_s: float


# shared/spec/endpoint.md, "GPU categories and default prices" (seed 002), plus "cpu".
GPU_CATEGORIES: tuple[GpuCategory, ...] = (
    GpuCategory("16GB", ("A4000", "A4500", "RTX 4000"), 16, 0.00016, 0.00011),
    GpuCategory("24GB_PRO", ("4090",), 24, 0.00031, 0.00021),
    GpuCategory("24GB", ("L4", "A5000", "3090"), 24, 0.00019, 0.00013),
    GpuCategory("48GB_PRO", ("L40", "L40S", "6000 Ada"), 48, 0.00053, 0.00037),
    GpuCategory("48GB", ("A6000", "A40"), 48, 0.00034, 0.00024),
    GpuCategory("80GB_PRO", ("H100",), 80, 0.00116, 0.00093),
    GpuCategory("80GB", ("A100",), 80, 0.00076, 0.00060),
    GpuCategory("141GB_PRO", ("H200",), 141, 0.00155, 0.00124),
    GpuCategory("180GB", ("B200",), 180, 0.00240, 0.00190),
    GpuCategory("cpu", ("cpu",), 0, 0.0, 0.0),
)
CPU = "cpu"

_BY_TYPE = {t.casefold(): c for c in GPU_CATEGORIES for t in c.types}
_BY_NAME = {c.name.casefold(): c for c in GPU_CATEGORIES}
_BY_EXACT_NAME = {c.name: c for c in GPU_CATEGORIES}
# Known GPU types as word sequences, longest first: a two-word type is tried before one-word ones.
_TYPE_TOKENS = sorted(
    ((tuple(t.upper().split()), t) for c in GPU_CATEGORIES if c.name != CPU for t in c.types),
    key=lambda pair: -len(pair[0]),
)


def category_of(gpu_type: str) -> GpuCategory | None:
    """The category a GPU type belongs to (case-insensitive), or None for a type not in the table.

    >>> category_of("l4").name
    '24GB'
    """
    return _BY_TYPE.get(gpu_type.casefold())


def category_named(name: str) -> GpuCategory | None:
    """The category called `name` (case-insensitive: "24gb" is "24GB"), or None."""
    return _BY_NAME.get(name.casefold())


def gpu_type_from_name(name: str) -> str:
    """Map a device name as NVML reports it to a type of the table; unknown names stay as they are.

    The name is split into words (on spaces, dashes and underscores) and a known type must appear
    as whole consecutive words, so "L40S" is not "L40" and "RTX A4000" is "A4000", not "RTX 4000".

    >>> gpu_type_from_name("NVIDIA H100 80GB HBM3")
    'H100'
    >>> gpu_type_from_name("NVIDIA RTX 6000 Ada Generation")
    '6000 Ada'
    >>> gpu_type_from_name("Tesla T4")
    'Tesla T4'
    """
    words = tuple(w for w in re.split(r"[\s_-]+", name.upper()) if w)
    for tokens, gpu_type in _TYPE_TOKENS:
        if any(words[i : i + len(tokens)] == tokens for i in range(len(words))):
            return gpu_type
    return name


def cuda_version_string(driver_version: int) -> str:
    """NVML's CUDA driver version number as "major.minor".

    >>> cuda_version_string(12040)
    '12.4'
    """
    return f"{driver_version // 1000}.{driver_version % 1000 // 10}"


# --- prices -------------------------------------------------------------------------------------


class Price(NamedTuple):
    """USD per second per GPU (per worker for "cpu"): flex (scaled workers) and active."""

    flex_per_s: float
    active_per_s: float


Prices = Mapping[str, Price]  # category name -> price
_PRICE_KEYS = {"flex": "flex_per_s", "active": "active_per_s"}


def default_prices() -> dict[str, Price]:
    """The table's prices, by category name."""
    return {c.name: Price(c.flex_per_s, c.active_per_s) for c in GPU_CATEGORIES}


def parse_prices(table: Any, where: str) -> dict[str, Price]:
    """Read `[prices]`: overrides of the table, one sub-table per category, either key optional.

    ```toml
    [prices.24GB]            # or [prices."24GB"]
    flex = 0.0002            # USD per second per GPU
    active = 0.00015
    ```

    Raises:
        SpecError: not a table, an unknown category or key, or a price that is not a number >= 0;
            the message names `where` and the field, e.g. "field 'prices.24GB.flex'".
    """
    prices = default_prices()
    if not isinstance(table, dict):
        raise SpecError(f"{where}: field 'prices': expected a table ([prices]), got {table!r}")
    top = _Reader(where, "prices", table)
    for name in table:
        category = _BY_EXACT_NAME.get(name)
        if category is None:
            known = ", ".join(c.name for c in GPU_CATEGORIES)
            raise top.error(name, f"unknown GPU category (one of {known})")
        value = table[name]
        top.check(name, isinstance(value, dict), f"expected a table, got {value!r}")
        reader = _Reader(where, f"prices.{name}", value)
        changes: dict[str, float] = {}
        for key, price in value.items():
            reader.check(key, key in _PRICE_KEYS, "unknown key (flex or active)")
            number = isinstance(price, int | float) and not isinstance(price, bool)
            ok = number and math.isfinite(price) and price >= 0
            reader.check(key, ok, f"must be a number >= 0 (USD per second), got {price!r}")
            changes[_PRICE_KEYS[key]] = float(price)
        prices[category.name] = prices[category.name]._replace(**changes)
    return prices


# --- hosts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    """`count` GPUs of one type on a host."""

    type: str
    memory_gb: int
    count: int = 1


@dataclass(frozen=True)
class Host:
    """A machine runq may start workers on.

    GPUs are numbered by expanding `gpus` in order: `(Gpu("L4", 24, 2), Gpu("A100", 80, 1))`
    gives 0 and 1 for the L4s and 2 for the A100, the numbers a worker gets in
    CUDA_VISIBLE_DEVICES. A host with no GPUs is a CPU pool; any host takes up to `cpu_slots`
    CPU workers.
    """

    name: str
    data_center: str = ""  # "" matches no endpoint that names data centres
    cuda_version: str = ""  # "" matches no endpoint that names CUDA versions
    volumes: Mapping[str, str] = field(default_factory=dict)  # volume name -> mount path
    models: tuple[str, ...] = ()  # model sources already cached here
    # Container images already here: references as endpoints name them, and REPO@DIGEST forms.
    images: tuple[str, ...] = ()
    gpus: tuple[Gpu, ...] = ()
    cpu_slots: int = 0

    @property
    def devices(self) -> tuple[str, ...]:
        """The type of each GPU, by index."""
        return tuple(gpu.type for gpu in self.gpus for _ in range(gpu.count))

    @property
    def is_cpu_pool(self) -> bool:
        return not self.gpus


_HOST_KEYS = ("name", "data_center", "cuda_version", "volumes", "models", "gpus", "cpu_slots")


def parse_hosts(items: Any, where: str, cpu_slots: int = MIN_CPU_SLOTS) -> tuple[Host, ...]:
    """Read `[[hosts]]`, an array of tables; `cpu_slots` is the default for hosts that omit it
    (the caller's: `runq.fleet.machine.default_cpu_slots()` looks at this machine).

    ```toml
    [[hosts]]
    name = "box1"
    data_center = "home"
    cuda_version = "12.4"
    volumes = { models = "/mnt/models" }
    models = ["hf://org/name"]
    gpus = [{ type = "L4", count = 2 }, { type = "A100", count = 1, memory_gb = 40 }]
    cpu_slots = 8
    ```

    GPU types are matched to the table case-insensitively, NVML names included ("NVIDIA L4");
    `memory_gb` defaults to the category's.

    Raises:
        SpecError: an unknown key, a wrong type, a GPU type not in the table, a count below 1 or
            a duplicate host name; the message names `where` and the field, e.g.
            "field 'hosts[0].gpus[1].count'".
    """
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise SpecError(f"{where}: field 'hosts': expected an array of tables ([[hosts]])")
    hosts: list[Host] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        host = _parse_host(_Reader(where, f"hosts[{index}]", item), cpu_slots)
        if host.name in first_index:
            raise SpecError(
                f"{where}: field 'hosts[{index}].name': duplicate host name {host.name!r}"
                f" (also hosts[{first_index[host.name]}])"
            )
        first_index[host.name] = index
        hosts.append(host)
    return tuple(hosts)


def _parse_host(reader: _Reader, default_slots: int) -> Host:
    if "name" not in reader.table:
        raise reader.error("name", "missing: every host needs a name")
    name = reader.get("name", str, "")
    reader.check("name", bool(HOST_NAME_PATTERN.fullmatch(name)), _bad_name(name))
    cuda_version = reader.get("cuda_version", str, "")
    reader.check(
        "cuda_version",
        cuda_version == "" or bool(CUDA_VERSION_PATTERN.fullmatch(cuda_version)),
        f'expected a version string such as "12.4", got {cuda_version!r}',
    )
    volumes = reader.get("volumes", dict, {})
    for volume, path in volumes.items():
        reader.check("volumes", isinstance(path, str), f"mount path of {volume!r} must be a string")
    cpu_slots = reader.get("cpu_slots", int, default_slots)
    reader.check("cpu_slots", cpu_slots >= 0, f"must be at least 0, got {cpu_slots}")
    host = Host(
        name=name,
        data_center=reader.get("data_center", str, ""),
        cuda_version=cuda_version,
        volumes=dict(volumes),
        models=reader.strings("models", ()),
        gpus=_parse_gpus(reader),
        cpu_slots=cpu_slots,
    )
    reader.finish()
    return host


def _bad_name(name: str) -> str:
    return f"must be 1..64 of [A-Za-z0-9._-] starting with a letter or digit, got {name!r}"


def _parse_gpus(reader: _Reader) -> tuple[Gpu, ...]:
    items = reader.get("gpus", list, [])
    gpus: list[Gpu] = []
    for index, item in enumerate(items):
        section = f"{reader.section}.gpus[{index}]"
        if not isinstance(item, dict):
            raise SpecError(f"{reader.where}: field '{section}': expected a table, got {item!r}")
        gpus.append(_parse_gpu(_Reader(reader.where, section, item)))
    return tuple(gpus)


def _parse_gpu(reader: _Reader) -> Gpu:
    if "type" not in reader.table:
        raise reader.error("type", 'missing: a GPU needs a type, e.g. "L4"')
    gpu_type = gpu_type_from_name(reader.get("type", str, ""))
    category = category_of(gpu_type)
    if category is None or category.name == CPU:
        known = ", ".join(t for c in GPU_CATEGORIES if c.name != CPU for t in c.types)
        raise reader.error("type", f"unknown GPU type {gpu_type!r} (one of {known})")
    canonical = next(t for t in category.types if t.casefold() == gpu_type.casefold())
    count = reader.get("count", int, 1)
    reader.check("count", count >= 1, f"must be at least 1, got {count}")
    memory_gb = reader.get("memory_gb", int, category.memory_gb)
    reader.check("memory_gb", memory_gb >= 1, f"must be at least 1, got {memory_gb}")
    reader.finish()
    return Gpu(canonical, memory_gb, count)


# --- devices --------------------------------------------------------------------------


def group_gpus(devices: Iterable[tuple[str, int]]) -> tuple[Gpu, ...]:
    """Devices in index order, as (type, memory_gb), grouped into runs of one type and memory.

    Only neighbours are merged, so expanding the result gives the devices back in NVML's order:
    [("L4", 24), ("L4", 24), ("A100", 80)] -> (Gpu("L4", 24, 2), Gpu("A100", 80, 1)).
    """
    gpus: list[Gpu] = []
    for gpu_type, memory_gb in devices:
        last = gpus[-1] if gpus else None
        if last is not None and (last.type, last.memory_gb) == (gpu_type, memory_gb):
            gpus[-1] = Gpu(gpu_type, memory_gb, last.count + 1)
        else:
            gpus.append(Gpu(gpu_type, memory_gb, 1))
    return tuple(gpus)
