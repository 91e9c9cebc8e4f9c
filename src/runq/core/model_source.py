"""The forms an endpoint's `[model] source` takes, parsed once so that spec validation, the host
cache and placement agree on what a source means."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

HF = "hf"  # hf://org/name: a Hugging Face repo, fetched into the host cache (HF hub layout)
HTTP = "http"  # http(s)://...: one file, fetched into the host cache
FILE = "file"  # file:///abs/path or /abs/path: used in place
VOLUME = "volume"  # volume://NAME/path: used in place, under the host's mount of volume NAME
BAKED = "baked"  # a relative path: used in place, inside the worker's dir

FETCHED = (HF, HTTP)  # kinds the cache downloads; the others are read where they are

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
FORMS = "hf://org/name, https://..., file:///abs/path, volume://NAME/path or a path in the dir"


@dataclass(frozen=True)
class ModelSource:
    """A parsed source. `location` is the repo id (hf), the URL (http), the absolute path
    (file), the path inside the volume (volume) or the relative path (baked)."""

    kind: str
    location: str
    volume: str = ""  # volume kind only

    @property
    def fetched(self) -> bool:
        return self.kind in FETCHED


def parse_model_source(text: str) -> ModelSource:
    """Parse a `[model] source`.

    >>> parse_model_source("hf://org/name")
    ModelSource(kind='hf', location='org/name', volume='')
    >>> parse_model_source("volume://models/llama/7b")
    ModelSource(kind='volume', location='llama/7b', volume='models')
    >>> parse_model_source("weights/model.safetensors").kind
    'baked'

    Raises:
        ValueError: not one of the forms; the message says which forms are allowed.
    """
    if not text.strip() or text != text.strip() or "\0" in text:
        raise ValueError(f"expected one of {FORMS}, got {text!r}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        path = PurePosixPath(text)
        if path.is_absolute():
            return ModelSource(FILE, str(path))
        if ".." in path.parts:
            raise ValueError(f"a baked model path must stay inside the worker dir, got {text!r}")
        return ModelSource(BAKED, str(path))
    scheme = scheme.lower()
    if scheme == "hf":
        repo = rest.strip("/")
        if not _REPO_ID.fullmatch(repo):
            raise ValueError(f"expected hf://org/name (a Hugging Face repo id), got {text!r}")
        return ModelSource(HF, repo)
    if scheme in ("http", "https"):
        url = urlsplit(text)
        if not url.hostname or url.path in ("", "/"):
            raise ValueError(f"expected a URL of a file, such as https://host/model.bin: {text!r}")
        return ModelSource(HTTP, text)
    if scheme == "file":
        if not rest.startswith("/"):
            raise ValueError(f"expected file:///absolute/path (three slashes), got {text!r}")
        return ModelSource(FILE, str(PurePosixPath(rest)))
    if scheme == "volume":
        name, _, inner = rest.partition("/")
        if not _VOLUME_NAME.fullmatch(name) or ".." in PurePosixPath(inner).parts:
            raise ValueError(f"expected volume://NAME/path in the volume, got {text!r}")
        return ModelSource(VOLUME, inner.strip("/"), volume=name)
    raise ValueError(f"unknown scheme {scheme!r}: expected one of {FORMS}")


def check_sha256(text: str) -> str:
    """The digest in lower case; ValueError unless it is 64 hex digits (or empty)."""
    if text and not _SHA256.fullmatch(text):
        raise ValueError(f"expected 64 hex digits (a sha256), got {text!r}")
    return text.lower()
