"""The README and docs/ hold only links that resolve in a fresh clone, and docs/endpoint.md says
what the code reads: its examples load, and every field of an endpoint file is in it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from runq.core.config import load_config
from runq.core.spec import (
    ComputeSection,
    JobsSection,
    ModelSection,
    ScalingSection,
    WorkerSection,
    loads_spec,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
REFERENCE = ROOT / "docs" / "endpoint.md"


def relative_links(page: Path) -> list[str]:
    links = LINK.findall(page.read_text(encoding="utf-8"))
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", link)]


def toml_blocks(page: Path) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    broken = []
    for link in relative_links(page):
        target = (page.parent / link.split("#")[0]).resolve()
        if not target.exists() or ROOT not in (target, *target.parents):
            broken.append(link)
    assert broken == []


def test_the_readme_links_the_endpoint_reference() -> None:
    assert "docs/endpoint.md" in relative_links(ROOT / "README.md")


def test_the_reference_endpoint_file_is_a_valid_endpoint_file(tmp_path: Path) -> None:
    endpoint = toml_blocks(REFERENCE)[0]
    spec = loads_spec(endpoint, tmp_path / "endpoint.toml")
    # The values it shows as defaults are the defaults.
    assert spec.scaling == ScalingSection()
    assert spec.jobs == JobsSection()
    assert spec.compute == ComputeSection()


def test_every_field_of_an_endpoint_file_is_in_the_reference() -> None:
    text = toml_blocks(REFERENCE)[0]
    sections = (WorkerSection, ComputeSection, ScalingSection, JobsSection, ModelSection)
    fields = {f.name.removesuffix("_s") for s in sections for f in dataclasses.fields(s)}
    missing = sorted(f for f in fields if not re.search(rf"^#? ?{f} = ", text, re.M))
    assert missing == []


def test_the_reference_server_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "runq.toml"
    path.write_text(toml_blocks(REFERENCE)[1])
    config = load_config(path)
    assert config.cpu_slots == 8 and config.hosts[0].name == "local"
