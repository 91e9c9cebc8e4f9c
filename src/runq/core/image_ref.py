"""Container image references as users write them: `registry:port/path/name:tag@sha256:...`."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The grammar of github.com/distribution/reference, less its rarely used corners.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?)"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
MAX_LENGTH = 255 + 128 + 72  # name, tag and digest at their longest


@dataclass(frozen=True)
class ImageRef:
    name: str  # e.g. "docker.io/library/python" or "localhost/echo"
    tag: str  # "" when absent
    digest: str  # "sha256:..." when pinned, else ""

    @property
    def pinned(self) -> bool:
        return bool(self.digest)

    def with_digest(self, digest: str) -> str:
        """The reference pinned to `digest` (the tag is kept for people to read)."""
        tag = f":{self.tag}" if self.tag else ""
        return f"{self.name}{tag}@{digest}"


def check_image_ref(text: str) -> ImageRef:
    """Parse an image reference.

    >>> check_image_ref("localhost:5000/team/echo:v1")
    ImageRef(name='localhost:5000/team/echo', tag='v1', digest='')

    Raises:
        ValueError: not a reference an engine accepts; the message quotes it.
    """
    match = _REFERENCE.fullmatch(text) if len(text) <= MAX_LENGTH else None
    if match is None:
        raise ValueError(
            "expected an image reference such as 'registry.example.com/team/worker:v1' or "
            f"'name@sha256:<64 hex>' (lower-case path, no spaces), got {text!r}"
        )
    return ImageRef(match["name"], match["tag"] or "", match["digest"] or "")


def locality_key(text: str) -> str:
    """The name placement looks for among the images a host holds: a pinned reference as
    NAME@DIGEST (its tag is only for people to read), any other as written.

    >>> locality_key("reg.example/w:v1@sha256:" + "a" * 64) == "reg.example/w@sha256:" + "a" * 64
    True
    >>> locality_key("reg.example/w:v1")
    'reg.example/w:v1'
    """
    try:
        ref = check_image_ref(text)
    except ValueError:
        return text
    return f"{ref.name}@{ref.digest}" if ref.digest else text


def held_keys(text: str, digest: str) -> tuple[str, ...]:
    """The names under which a host holds an image it got as `text` with the registry's
    manifest `digest` ("" for an image built here): what an endpoint naming it by that
    reference or by its digest looks for (`locality_key`).

    >>> held_keys("reg.example/w:v1", "sha256:" + "b" * 64)[1] == "reg.example/w@sha256:" + "b" * 64
    True
    >>> held_keys("localhost/runq-x:1234", "")
    ('localhost/runq-x:1234',)
    """
    keys = [text, locality_key(text)]
    try:
        name = check_image_ref(text).name
    except ValueError:
        name = ""
    if name and digest:
        keys.append(f"{name}@{digest}")
    return tuple(dict.fromkeys(keys))
