"""runq.core.hosts: the GPU table, `[[hosts]]` and `[prices]` in runq.toml (detection of this
machine: tests/fleet/test_machine.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from runq.core.config import load_config
from runq.core.hosts import (
    GPU_CATEGORIES,
    Gpu,
    Host,
    Price,
    category_named,
    category_of,
    cuda_version_string,
    default_prices,
    gpu_type_from_name,
    group_gpus,
    parse_hosts,
    parse_prices,
)
from runq.errors import SpecError

WHERE = "runq.toml"


def hosts_from(text: str, cpu_slots: int = 6) -> tuple[Host, ...]:
    """Parse `[[hosts]]` TOML text as load_config would, with a fixed default of CPU slots."""
    return parse_hosts(tomllib.loads(text).get("hosts", []), WHERE, cpu_slots=cpu_slots)


def prices_from(text: str) -> dict[str, Price]:
    return parse_prices(tomllib.loads(text).get("prices", {}), WHERE)


# --- the GPU table ------------------------------------------------------------------------------


def test_the_table_has_every_category_of_the_spec_in_its_order() -> None:
    assert [c.name for c in GPU_CATEGORIES] == [
        "16GB",
        "24GB_PRO",
        "24GB",
        "48GB_PRO",
        "48GB",
        "80GB_PRO",
        "80GB",
        "141GB_PRO",
        "180GB",
        "cpu",
    ]


PRICE_DEFAULTS = [
    pytest.param("16GB", Price(0.00016, 0.00011), id="16GB"),
    pytest.param("24GB", Price(0.00019, 0.00013), id="24GB"),
    pytest.param("24GB_PRO", Price(0.00031, 0.00021), id="24GB_PRO, the 4090"),
    pytest.param("80GB_PRO", Price(0.00116, 0.00093), id="80GB_PRO, the H100"),
    pytest.param("180GB", Price(0.00240, 0.00190), id="180GB, the B200"),
    pytest.param("cpu", Price(0.0, 0.0), id="cpu costs nothing by default"),
]


@pytest.mark.parametrize(("category", "price"), PRICE_DEFAULTS)
def test_default_prices_are_the_table(category: str, price: Price) -> None:
    assert default_prices()[category] == price


CATEGORY_OF = [
    pytest.param("L4", "24GB", 24, id="L4 is 24GB"),
    pytest.param("l4", "24GB", 24, id="a type in lower case"),
    pytest.param("RTX 4000", "16GB", 16, id="a type of two words"),
    pytest.param("6000 ada", "48GB_PRO", 48, id="6000 Ada in any case"),
    pytest.param("H100", "80GB_PRO", 80, id="H100 is 80GB_PRO"),
    pytest.param("H200", "141GB_PRO", 141, id="H200 is 141GB_PRO"),
    pytest.param("cpu", "cpu", 0, id="cpu is its own category"),
]


@pytest.mark.parametrize(("gpu_type", "name", "memory_gb"), CATEGORY_OF)
def test_category_of_a_type(gpu_type: str, name: str, memory_gb: int) -> None:
    category = category_of(gpu_type)

    assert category is not None
    assert (category.name, category.memory_gb) == (name, memory_gb)


@pytest.mark.parametrize("gpu_type", ["T4", "NVIDIA L4", "", "24GB"])
def test_category_of_an_unknown_type_is_none(gpu_type: str) -> None:
    assert category_of(gpu_type) is None


def test_category_named_ignores_case() -> None:
    assert category_named("80gb_pro") is category_named("80GB_PRO") is GPU_CATEGORIES[5]
    assert category_named("L4") is None


GPU_NAMES = [
    pytest.param("NVIDIA L4", "L4", id="NVIDIA L4"),
    pytest.param("NVIDIA H100 80GB HBM3", "H100", id="H100 SXM"),
    pytest.param("NVIDIA H100 PCIe", "H100", id="H100 PCIe"),
    pytest.param("NVIDIA H100 NVL", "H100", id="H100 NVL"),
    pytest.param("NVIDIA A100-SXM4-80GB", "A100", id="a name joined by dashes"),
    pytest.param("NVIDIA A100 80GB PCIe", "A100", id="A100 PCIe"),
    pytest.param("NVIDIA GeForce RTX 4090", "4090", id="GeForce 4090"),
    pytest.param("NVIDIA GeForce RTX 3090", "3090", id="GeForce 3090"),
    pytest.param("NVIDIA RTX A4000", "A4000", id="RTX A4000 is A4000, not RTX 4000"),
    pytest.param("NVIDIA RTX A6000", "A6000", id="RTX A6000"),
    pytest.param("NVIDIA RTX 4000 Ada Generation", "RTX 4000", id="RTX 4000 Ada"),
    pytest.param("NVIDIA RTX 6000 Ada Generation", "6000 Ada", id="RTX 6000 Ada"),
    pytest.param("NVIDIA L40S", "L40S", id="L40S is not L40"),
    pytest.param("NVIDIA L40", "L40", id="L40"),
    pytest.param("NVIDIA A40", "A40", id="A40"),
    pytest.param("NVIDIA H200", "H200", id="H200"),
    pytest.param("NVIDIA B200", "B200", id="B200"),
    pytest.param("l4", "L4", id="a bare type in lower case"),
    pytest.param("Tesla T4", "Tesla T4", id="an unknown GPU keeps its name"),
    pytest.param("Quadro RTX 6000", "Quadro RTX 6000", id="6000 without Ada is not 6000 Ada"),
    pytest.param("NVIDIA A10", "NVIDIA A10", id="A10 is not A100"),
]


@pytest.mark.parametrize(("name", "gpu_type"), GPU_NAMES)
def test_gpu_type_from_an_nvml_name(name: str, gpu_type: str) -> None:
    assert gpu_type_from_name(name) == gpu_type


@pytest.mark.parametrize(
    ("number", "version"),
    [
        pytest.param(12040, "12.4", id="12040 is 12.4"),
        pytest.param(11080, "11.8", id="11080 is 11.8"),
        pytest.param(13000, "13.0", id="13000 is 13.0"),
    ],
)
def test_cuda_version_string(number: int, version: str) -> None:
    assert cuda_version_string(number) == version


def test_group_gpus_merges_only_neighbours_so_indices_stay_in_order() -> None:
    devices = [("L4", 24), ("L4", 24), ("A100", 80), ("L4", 24)]

    gpus = group_gpus(devices)

    assert gpus == (Gpu("L4", 24, 2), Gpu("A100", 80, 1), Gpu("L4", 24, 1))
    assert Host("h", gpus=gpus).devices == ("L4", "L4", "A100", "L4")


# --- [[hosts]] ----------------------------------------------------------------------------------

FULL_HOSTS = """
[[hosts]]
name = "box1"
data_center = "home"
cuda_version = "12.4"
volumes = { models = "/mnt/models" }
models = ["hf://org/name"]
gpus = [{ type = "L4", count = 2 }, { type = "A100", memory_gb = 40 }]
cpu_slots = 8

[[hosts]]
name = "pool"
"""


def test_hosts_read_every_key_and_default_the_rest() -> None:
    assert hosts_from(FULL_HOSTS, cpu_slots=6) == (
        Host(
            name="box1",
            data_center="home",
            cuda_version="12.4",
            volumes={"models": "/mnt/models"},
            models=("hf://org/name",),
            gpus=(Gpu("L4", 24, 2), Gpu("A100", 40, 1)),
            cpu_slots=8,
        ),
        Host(name="pool", cpu_slots=6),
    )


@pytest.mark.parametrize(
    ("gpu", "parsed"),
    [
        pytest.param('{ type = "l4" }', Gpu("L4", 24, 1), id="a type in lower case"),
        pytest.param('{ type = "6000 ADA" }', Gpu("6000 Ada", 48, 1), id="two words, any case"),
        pytest.param(
            '{ type = "NVIDIA H100 80GB HBM3", count = 8 }',
            Gpu("H100", 80, 8),
            id="an NVML name",
        ),
        pytest.param('{ type = "A100", memory_gb = 40 }', Gpu("A100", 40, 1), id="memory given"),
    ],
)
def test_a_gpu_type_is_stored_as_the_table_spells_it(gpu: str, parsed: Gpu) -> None:
    (host,) = hosts_from(f'[[hosts]]\nname = "a"\ngpus = [{gpu}]\n')

    assert host.gpus == (parsed,)


def test_a_host_without_cpu_slots_takes_the_callers_default() -> None:
    (host,) = parse_hosts([{"name": "a"}], WHERE, cpu_slots=11)

    assert host.cpu_slots == 11


def test_no_hosts_is_an_empty_tuple() -> None:
    assert hosts_from("") == ()


def host_text(body: str, name: str = 'name = "a"') -> str:
    return f"[[hosts]]\n{name}\n{body}\n"


BAD_HOSTS = [
    pytest.param("hosts = 5", "hosts", id="hosts that are not an array"),
    pytest.param("[hosts]\nname = 'a'", "hosts", id="a single [hosts] table"),
    pytest.param("hosts = [1, 2]", "hosts", id="an array of numbers"),
    pytest.param(host_text('colour = "red"'), "hosts[0].colour", id="an unknown key"),
    pytest.param(host_text("", name=""), "hosts[0].name", id="a host without a name"),
    pytest.param(host_text("", name="name = 3"), "hosts[0].name", id="a name that is a number"),
    pytest.param(host_text("", name='name = "my box"'), "hosts[0].name", id="a name with a space"),
    pytest.param(host_text("", name='name = ""'), "hosts[0].name", id="an empty name"),
    pytest.param(
        host_text("") + host_text("", name='name = "a"'),
        "hosts[1].name",
        id="a duplicate host name names the second",
    ),
    pytest.param(
        host_text("cuda_version = 12.4"), "hosts[0].cuda_version", id="a CUDA version as a number"
    ),
    pytest.param(
        host_text('cuda_version = "twelve"'), "hosts[0].cuda_version", id="a CUDA version in words"
    ),
    pytest.param(host_text("data_center = 1"), "hosts[0].data_center", id="a numeric data centre"),
    pytest.param(host_text('volumes = "/mnt"'), "hosts[0].volumes", id="volumes that are a path"),
    pytest.param(
        host_text("volumes = { models = 1 }"), "hosts[0].volumes", id="a numeric mount path"
    ),
    pytest.param(host_text('models = "hf://x"'), "hosts[0].models", id="models that are a string"),
    pytest.param(host_text("cpu_slots = -1"), "hosts[0].cpu_slots", id="negative cpu slots"),
    pytest.param(host_text("cpu_slots = true"), "hosts[0].cpu_slots", id="a bool for cpu slots"),
    pytest.param(host_text('gpus = "L4"'), "hosts[0].gpus", id="gpus that are a string"),
    pytest.param(host_text('gpus = ["L4"]'), "hosts[0].gpus[0]", id="a gpu that is not a table"),
    pytest.param(
        host_text('gpus = [{ type = "L4" }, { type = "L4", count = 0 }]'),
        "hosts[0].gpus[1].count",
        id="a count of zero names the gpu's index",
    ),
    pytest.param(
        host_text('gpus = [{ type = "L4", count = "2" }]'),
        "hosts[0].gpus[0].count",
        id="a count as a string",
    ),
    pytest.param(
        host_text('gpus = [{ type = "T4" }]'), "hosts[0].gpus[0].type", id="a type not in the table"
    ),
    pytest.param(
        host_text('gpus = [{ type = "cpu" }]'), "hosts[0].gpus[0].type", id="a gpu of type cpu"
    ),
    pytest.param(host_text("gpus = [{ count = 2 }]"), "hosts[0].gpus[0].type", id="no gpu type"),
    pytest.param(
        host_text('gpus = [{ type = "L4", vram = 24 }]'),
        "hosts[0].gpus[0].vram",
        id="an unknown gpu key",
    ),
    pytest.param(
        host_text('gpus = [{ type = "L4", memory_gb = 0 }]'),
        "hosts[0].gpus[0].memory_gb",
        id="no memory",
    ),
]


@pytest.mark.parametrize(("text", "field"), BAD_HOSTS)
def test_bad_hosts_name_the_file_and_the_field(text: str, field: str) -> None:
    with pytest.raises(SpecError) as raised:
        hosts_from(text)

    assert str(raised.value).startswith(f"{WHERE}: field '{field}': ")


def test_a_duplicate_host_name_says_where_the_first_is() -> None:
    with pytest.raises(SpecError, match=r"duplicate host name 'a' \(also hosts\[0\]\)"):
        hosts_from(host_text("") + host_text("") + host_text(""))


# --- [prices] -----------------------------------------------------------------------------------


def test_no_prices_table_gives_the_defaults() -> None:
    assert prices_from("") == default_prices()


def test_a_price_overrides_only_what_it_names() -> None:
    prices = prices_from('[prices.24GB]\nflex = 0.0002\n[prices."cpu"]\nflex = 0\nactive = 1e-5\n')

    # 24GB: flex replaced, active kept from the table (0.00013); every other category untouched.
    assert prices["24GB"] == Price(0.0002, 0.00013)
    assert prices["cpu"] == Price(0.0, 1e-5)
    assert isinstance(prices["cpu"].flex_per_s, float)
    assert {k: v for k, v in prices.items() if k not in ("24GB", "cpu")} == {
        k: v for k, v in default_prices().items() if k not in ("24GB", "cpu")
    }


BAD_PRICES = [
    pytest.param("prices = 5", "prices", id="prices that are not a table"),
    pytest.param("[prices]\n24GB = 0.1", "prices.24GB", id="a category that is not a table"),
    pytest.param("[prices.T4]\nflex = 0.1", "prices.T4", id="a type instead of a category"),
    pytest.param("[prices.24gb]\nflex = 0.1", "prices.24gb", id="a category in the wrong case"),
    pytest.param("[prices.24GB]\nprice = 0.1", "prices.24GB.price", id="an unknown key"),
    pytest.param("[prices.24GB]\nflex = -0.1", "prices.24GB.flex", id="a negative price"),
    pytest.param('[prices.24GB]\nactive = "0.1"', "prices.24GB.active", id="a price as a string"),
    pytest.param("[prices.24GB]\nflex = true", "prices.24GB.flex", id="a bool for a price"),
    pytest.param("[prices.24GB]\nflex = nan", "prices.24GB.flex", id="not a number"),
    pytest.param("[prices.24GB]\nflex = inf", "prices.24GB.flex", id="an infinite price"),
]


@pytest.mark.parametrize(("text", "field"), BAD_PRICES)
def test_bad_prices_name_the_file_and_the_field(text: str, field: str) -> None:
    with pytest.raises(SpecError) as raised:
        prices_from(text)

    assert str(raised.value).startswith(f"{WHERE}: field '{field}': ")


def test_a_negative_price_says_what_is_wanted() -> None:
    with pytest.raises(SpecError, match=r"must be a number >= 0 \(USD per second\), got -1"):
        prices_from("[prices.80GB_PRO]\nactive = -1")


# --- runq.toml ----------------------------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runq.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config_reads_hosts_and_prices(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[server]\nport = 8001\n[[hosts]]\nname = "gpu1"\ngpus = [{ type = "H100", count = 2 }]\n'
        "cpu_slots = 0\n[prices.80GB_PRO]\nflex = 0.001\n",
    )

    config = load_config(path)

    assert config.port == 8001
    assert config.hosts == (Host("gpu1", gpus=(Gpu("H100", 80, 2),), cpu_slots=0),)
    assert config.prices["80GB_PRO"] == Price(0.001, 0.00093)


def test_server_cpu_slots_sets_the_default_of_declared_hosts(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[server]\ncpu_slots = 3\n[[hosts]]\nname = "a"\n[[hosts]]\nname = "b"\ncpu_slots = 5\n',
    )
    hosts = load_config(path, default_cpu_slots=40).hosts
    assert [h.cpu_slots for h in hosts] == [3, 5]  # b says its own; the caller's 40 is unused


def test_without_server_cpu_slots_a_host_takes_the_callers_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[[hosts]]\nname = "a"\n')

    assert [h.cpu_slots for h in load_config(path, default_cpu_slots=40).hosts] == [40]


@pytest.mark.parametrize("value", ["-1", '"8"', "1.5", "true"])
def test_a_bad_server_cpu_slots_is_an_error_naming_the_field(tmp_path: Path, value: str) -> None:
    path = write_config(tmp_path, f"[server]\ncpu_slots = {value}\n")
    with pytest.raises(SpecError, match=r"server\.cpu_slots"):
        load_config(path)


def test_the_default_config_has_no_hosts_and_the_table_prices() -> None:
    config = load_config(None)

    assert (config.hosts, config.prices) == ((), default_prices())


def test_a_bad_host_in_runq_toml_names_the_path(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[[hosts]]\nname = "a"\ngpus = [{ type = "L4", count = 0 }]\n')

    with pytest.raises(SpecError) as raised:
        load_config(path)

    assert str(raised.value).startswith(f"{path}: field 'hosts[0].gpus[0].count': ")
