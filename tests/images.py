"""Test images, built offline from this machine's own Python and the test venv's `runpod`.

An unmodified RunPod worker image needs a Python and the runpod SDK. Instead of a Debian
bootstrap (a minute, and a mirror), the rootfs is this interpreter's prefix (its stdlib, no
tests or GUI), the site-packages of `runpod` and everything it requires (the exact versions the
suite tests against), runq's stdlib-only worker SDK, the shared libraries they link (found
with ldd), and static busybox for /bin/sh. It is tagged by a hash of those inputs, so a second
run, or a second session, finds it built. `.ci/run` builds it before pytest:
`python -m tests.images`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as metadata
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from runq.core.containers_config import ContainersConfig
from runq.fleet.engine import Engine, EngineUnavailable, detect_engine

HANDLER = Path(__file__).parent / "handlers" / "runpod_image.py"  # the image's CMD
NATIVE_HANDLER = Path(__file__).parent / "handlers" / "native_echo.py"  # runq's worker SDK
RUNQ_SRC = Path(__file__).resolve().parents[1] / "src" / "runq"
REPOSITORY = "localhost/runq-test-runpod"
_SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages"}
_BUILDER_VERSION = "2"  # bump when the rootfs recipe changes


def find_engine(state_dir: Path) -> Engine:
    """The engine tests use (podman first), with runq's containers.conf in `state_dir`."""
    return detect_engine(ContainersConfig(), state_dir)


def unavailable(reason: str) -> None:
    """A container test without what it needs here is skipped, except in CI (`CI=true`),
    where it fails: CI must run the container tests."""
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"CI must run the container tests: {reason}")
    pytest.skip(reason)


def engine_or_skip(state_dir: Path) -> Engine:
    """The container engine for a test (see `unavailable` when there is none)."""
    try:
        return find_engine(state_dir)
    except EngineUnavailable as exc:
        unavailable(f"no container engine: {exc}")
        raise


FAKE_CDI = """cdiVersion: "0.5.0"
kind: "nvidia.com/gpu"
devices:
  - name: "0"
    containerEdits:
      env: ["RUNQ_FAKE_GPU_0=granted"]
  - name: "1"
    containerEdits:
      env: ["RUNQ_FAKE_GPU_1=granted"]
  - name: "2"
    containerEdits:
      env: ["RUNQ_FAKE_GPU_2=granted"]
containerEdits:
  env: ["RUNQ_FAKE_CDI=yes"]
"""


@contextlib.contextmanager
def fake_cdi_gpus(name: str) -> Iterator[Path]:
    """A CDI spec for three fake GPUs in /var/run/cdi (podman 4.3 reads cdiVersion <= 0.5.0),
    removed at the end. Skipped where a real nvidia.com/gpu spec exists: two specs of one
    kind would clash."""
    for folder in (Path("/etc/cdi"), Path("/var/run/cdi")):
        if any("nvidia.com/gpu" in p.read_text() for p in folder.glob("*.y*ml")):
            pytest.skip(f"a real nvidia.com/gpu CDI spec is in {folder}")
    path = Path(f"/var/run/cdi/{name}.yaml")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(FAKE_CDI)
    except PermissionError:
        pytest.skip("cannot write /var/run/cdi (not root)")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _closure(root: str) -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return sorted(seen.values(), key=lambda d: d.metadata["Name"].lower())


def image_tag() -> str:
    """The tag of the runpod test image for this interpreter, SDK and handler."""
    parts = [
        _BUILDER_VERSION,
        sys.version,
        sys.base_prefix,
        HANDLER.read_text(),
        NATIVE_HANDLER.read_text(),
        *(p.read_text() for p in _runq_worker_files()),
        *(f"{d.metadata['Name']}=={d.version}" for d in _closure("runpod")),
    ]
    return f"{REPOSITORY}:{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:16]}"


def _runq_worker_files() -> list[Path]:
    """runq's own worker SDK (stdlib only), so the image can also run a native handler."""
    return [RUNQ_SRC / "__init__.py", *sorted((RUNQ_SRC / "worker").glob("*.py"))]


def _ldd(paths: list[Path]) -> set[Path]:
    libs: set[Path] = set()
    for chunk in range(0, len(paths), 200):
        done = subprocess.run(
            ["ldd", *map(str, paths[chunk : chunk + 200])], capture_output=True, text=True
        )
        for match in re.finditer(r"(?:=>\s*)?(/\S+)\s+\(0x", done.stdout):
            libs.add(Path(match.group(1)))
    return libs


def _add(tar: tarfile.TarFile, source: Path, name: str | None = None) -> None:
    tar.add(str(source), arcname=name or str(source).lstrip("/"), recursive=False)


def _rootfs_tar(out: Path) -> None:
    prefix = Path(sys.base_prefix)
    binary = Path(os.path.realpath(sys._base_executable))  # type: ignore[attr-defined]
    stdlib = Path(sysconfig.get_paths(vars={"base": sys.base_prefix})["stdlib"])
    elves: list[Path] = [binary]
    with tarfile.open(out, "w") as tar:
        for directory in ("bin", "tmp", "etc", "usr/bin", "opt/site", "proc", "sys", "dev"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        _add(tar, binary)
        for link in ("usr/bin/python3", "usr/bin/python"):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, str(binary)
            tar.addfile(info)
        for path in sorted(stdlib.rglob("*")):
            relative = path.relative_to(stdlib).parts
            if relative[0] in _SKIP_STDLIB or relative[0].startswith("config-"):
                continue
            if path.is_file() and not path.is_symlink():
                _add(tar, path)
                if path.suffix == ".so":
                    elves.append(path)
        for lib in (prefix / "lib").glob("libpython*.so*"):
            _add(tar, lib)
        for dist in _closure("runpod"):
            for file in dist.files or []:
                located = Path(str(file.locate()))
                if located.is_file() and ".." not in file.parts:
                    _add(tar, located, f"opt/site/{file}")
                    if located.suffix == ".so" or ".so." in located.name:
                        elves.append(located)
        for lib in sorted(_ldd(elves)):
            if lib.exists() and not str(lib).startswith(str(prefix)):
                _add(tar, lib.resolve(), str(lib).lstrip("/"))
        _add(tar, Path(shutil.which("busybox") or "/bin/busybox"), "bin/busybox")
        for applet in ("sh", "ls", "cat", "sleep", "env"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for source, name in ((HANDLER, "handler.py"), (NATIVE_HANDLER, "native_handler.py")):
            data = source.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for source in _runq_worker_files():
            _add(tar, source, f"opt/site/runq/{source.relative_to(RUNQ_SRC)}")


def ensure_runpod_image(engine: Engine) -> str:
    """The runpod worker image's tag, built unless the engine already holds it (about 20 s)."""
    tag = image_tag()
    env = engine.environ()
    exists = subprocess.run(engine.argv("image", "exists", tag), env=env, capture_output=True)
    if exists.returncode == 0:
        return tag
    with tempfile.TemporaryDirectory(prefix="runq-image-") as tmp:
        archive = Path(tmp) / "rootfs.tar"
        _rootfs_tar(archive)
        changes = [
            'CMD ["python3", "-u", "/handler.py"]',
            "ENV PYTHONPATH=/opt/site",
            "ENV PATH=/usr/bin:/bin",
        ]
        args = ["import", *(f"--change={change}" for change in changes), str(archive), tag]
        subprocess.run(engine.argv(*args), env=env, check=True, capture_output=True)
    # Earlier builds (another runpod version, handler or Python) are of no use any more.
    listed = subprocess.run(
        engine.argv("images", "--format", "{{.Repository}}:{{.Tag}}", REPOSITORY),
        env=env,
        capture_output=True,
        text=True,
    )
    stale = [name for name in listed.stdout.split() if name != tag]
    if stale:
        subprocess.run(engine.argv("rmi", *stale), env=env, capture_output=True)
    return tag


def busybox_image(engine: Engine, tag: str) -> str:
    """A 2 MB image of static busybox alone (for pulls: quick to push and to unpack)."""
    with tempfile.TemporaryDirectory(prefix="runq-image-") as tmp:
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            _add(tar, Path(shutil.which("busybox") or "/bin/busybox"), "bin/busybox")
            info = tarfile.TarInfo("bin/sh")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        args = ["import", '--change=CMD ["/bin/sh"]', str(archive), tag]
        subprocess.run(engine.argv(*args), env=engine.environ(), check=True, capture_output=True)
    return tag


@contextlib.contextmanager
def loopback_registry(root: Path) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1 (no TLS, no auth), storing in `root`; yields
    its address, host:port."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise FileNotFoundError("docker-registry (apt-get install docker-registry)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = root / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'store'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    with open(root / "registry.log", "wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while not _answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not start: see {root}/registry.log")
                time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    # .ci/run: build before the suite, so the suite's time is the tests'.
    try:
        found = find_engine(Path(tempfile.gettempdir()) / "runq-test-engine")
    except EngineUnavailable as exc:
        sys.exit(f"tests.images: {exc}")
    print(ensure_runpod_image(found))
