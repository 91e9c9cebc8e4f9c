"""Images built from a worker folder (`[worker.container] build = "Containerfile"`): tagged by
the hash of the folder's content, so an unchanged folder is built once and a changed one gets
a new tag. "Bake the model into the image" then works on one machine, no registry."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from pathlib import Path

from runq.core.spec import EndpointSpec
from runq.fleet.engine import Engine

# Not part of what the image is built from: VCS data and Python's caches.
_SKIP = {".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache"}
_CHUNK = 1 << 20


class ImageBuildError(Exception):
    """The engine could not build the folder; the message holds the end of its output."""


def context_hash(directory: Path) -> str:
    """sha256 over the folder's files: relative path, mode bit for execution, content; in
    path order, so the same tree gives the same hash on any machine."""
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and not _SKIP.intersection(p.relative_to(directory).parts)
    )
    for path in files:
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        digest.update(b"x" if path.stat().st_mode & 0o111 else b"-")
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def built_tag(spec: EndpointSpec) -> str:
    """The image `spec`'s folder builds into: its repository and the content hash."""
    return f"{spec.worker.image}:{context_hash(spec.worker.dir)[:16]}"


def build_image(
    engine: Engine,
    spec: EndpointSpec,
    force: bool = False,
    build_args: Mapping[str, str] | None = None,
) -> tuple[str, bool]:
    """(tag, built now): the folder's image, built unless the engine holds that tag already.
    Blocking (a build takes seconds to minutes): the provisioner runs it in a thread.

    `build_args` set the Containerfile's ARGs (say, BASE: a base image from a local mirror).
    They are not part of the tag: the tag names the folder, however its image was built.

    Raises:
        ImageBuildError: the Containerfile is missing or the build failed.
    """
    containerfile = spec.worker.dir / spec.worker.container.build
    if not containerfile.is_file():
        raise ImageBuildError(f"{containerfile}: no such file ([worker.container] build)")
    tag = built_tag(spec)
    env = engine.environ()
    held = subprocess.run(engine.argv("image", "inspect", tag), env=env, capture_output=True)
    if held.returncode == 0 and not force:
        return tag, False
    args = ["build", "-f", str(containerfile), "-t", tag]
    args += [f"--build-arg={key}={value}" for key, value in (build_args or {}).items()]
    args.append(str(spec.worker.dir))
    done = subprocess.run(engine.argv(*args), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ImageBuildError(f"{engine.dialect.name} build of {containerfile} failed:\n{tail}")
    return tag, True
