"""`[model]` in an endpoint file and `model_cache_max` in runq.toml: each form a user writes
is understood, and each mistake is a SpecError naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from runq.core.config import DEFAULT_MODEL_CACHE_MAX, load_config
from runq.core.model_source import ModelSource, parse_model_source
from runq.core.sizes import parse_size
from runq.core.spec import loads_spec
from runq.errors import SpecError

HEAD = 'name = "m"\n[worker]\ncommand = ["python", "h.py"]\n[model]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf://org/name", ModelSource("hf", "org/name")),
        ("hf://gpt2", ModelSource("hf", "gpt2")),
        (
            "https://h.example/m/w.safetensors",
            ModelSource("http", "https://h.example/m/w.safetensors"),
        ),
        ("file:///srv/models/w.bin", ModelSource("file", "/srv/models/w.bin")),
        ("/srv/models/w.bin", ModelSource("file", "/srv/models/w.bin")),
        ("volume://models/llama/7b", ModelSource("volume", "llama/7b", volume="models")),
        ("weights/w.bin", ModelSource("baked", "weights/w.bin")),
    ],
    ids=["hf", "hf-without-org", "https", "file-url", "absolute-path", "volume", "baked"],
)
def test_each_source_form_parses(text: str, expected: ModelSource) -> None:
    assert parse_model_source(text) == expected


@pytest.mark.parametrize(
    ("model", "field", "says"),
    [
        ('source = "s3://b/m"', "model.source", "unknown scheme 's3'"),
        ('source = "hf://a/b/c"', "model.source", "hf://org/name"),
        ('source = "file://m"', "model.source", "three slashes"),
        ('source = "../m"', "model.source", "inside the worker dir"),
        ('source = "https://h"', "model.source", "URL of a file"),
        ('source = "https://h/m"\nsha256 = "abc"', "model.sha256", "64 hex digits"),
        ('source = "hf://a/b"\nsha256 = "' + "a" * 64 + '"', "model.sha256", "not hf://"),
    ],
    ids=[
        "unknown-scheme",
        "repo-id-with-two-slashes",
        "file-url-not-absolute",
        "baked-path-leaving-the-dir",
        "url-without-a-file",
        "short-digest",
        "digest-with-a-repo",
    ],
)
def test_a_bad_model_section_names_file_and_field(model: str, field: str, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        loads_spec(HEAD + model + "\n", Path("/eps/m.toml"))
    message = str(caught.value)
    assert message.startswith("/eps/m.toml: ") and f"field '{field}'" in message
    assert says in message


def test_a_digest_is_kept_in_lower_case() -> None:
    spec = loads_spec(HEAD + 'source = "https://h/m"\nsha256 = "' + "AB" * 32 + '"\n', Path("/x"))
    assert spec.model is not None and spec.model.sha256 == "ab" * 32


@pytest.mark.parametrize(
    ("value", "size"),
    [(1000, 1000), ("50GB", 50 * 10**9), ("512MiB", 512 * 2**20), ("1.5 TB", 15 * 10**11)],
    ids=["bytes", "decimal-unit", "binary-unit", "fraction-and-space"],
)
def test_cache_sizes_parse(value: object, size: int) -> None:
    assert parse_size(value) == size


def test_the_cache_limit_comes_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "runq.toml"
    config.write_text('[server]\nmodel_cache_max = "20GB"\n')
    assert load_config(config).model_cache_max_bytes == 20 * 10**9
    assert load_config(None).model_cache_max_bytes == DEFAULT_MODEL_CACHE_MAX
    assert load_config(None, {"data_dir": str(tmp_path)}).model_cache_dir == tmp_path / "models"
    config.write_text("[server]\nmodel_cache_max = -5\n")
    with pytest.raises(SpecError, match=r"server\.model_cache_max.*-5"):
        load_config(config)
