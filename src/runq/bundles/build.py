"""Build a bundle's venv once: `python -m venv` plus `pip install -r requirements`.

The venv lives under `data_dir/bundles/venv-KEY`, where KEY hashes the requirements file and
the Python version: endpoints with identical requirements share one venv, built once; unchanged
requirements are never installed again and changed ones get a new venv beside the old one. The
build step (`[worker] build`, e.g. a script that bakes the model into the worker's folder) runs
once per folder and step after the install, in the worker's folder, on the venv's interpreter
(a marker in the venv, keyed by folder and step, records that it ran). A worker whose command
starts with `python` then runs on the venv's interpreter, so its start installs and downloads
nothing.

runq itself reaches the venv through a `.pth` file holding the folder runq is imported from,
appended after the venv's own site-packages: the worker SDK (`from runq import worker`, stdlib
only) works without installing runq into every bundle, and a package the requirements pin wins
over one runq's environment has. `--system-site-packages` would not do: from a venv it exposes
the base interpreter's packages, not those of the environment runq runs in.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import runq
from runq.core.spec import EndpointSpec
from runq.errors import RunqError

MARKER = ".runq-bundle"  # written last: its presence means the install completed
BAKED = ".runq-baked-"  # + a hash of folder and step: that build step ran on this venv


class BundleError(RunqError):
    """A bundle cannot be built; the message names the endpoint, the file and pip's output."""


@dataclass(frozen=True)
class Bundle:
    endpoint: str
    requirements: Path
    venv: Path
    step: tuple[str, ...] = ()  # [worker] build
    workdir: Path = Path(".")

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def installed(self) -> bool:
        return (self.venv / MARKER).is_file()

    @property
    def baked(self) -> Path | None:
        """The marker of this bundle's build step on the venv; None without a build step."""
        if not self.step:
            return None
        key = hashlib.sha256("\0".join((str(self.workdir), *self.step)).encode())
        return self.venv / (BAKED + key.hexdigest()[:16])

    @property
    def built(self) -> bool:
        return self.installed and (self.baked is None or self.baked.is_file())


def bundle_for(spec: EndpointSpec, data_dir: Path) -> Bundle | None:
    """The bundle of an endpoint that declares `[worker] requirements`, else None.

    Raises:
        BundleError: the requirements file does not exist.
    """
    if not spec.worker.requirements:
        return None
    requirements = (spec.worker.dir / spec.worker.requirements).resolve()
    if not requirements.is_file():
        raise BundleError(
            f"endpoint '{spec.name}': [worker] requirements = '{spec.worker.requirements}': "
            f"no such file {requirements}"
        )
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    venv = data_dir / "bundles" / f"venv-{digest.hexdigest()[:16]}"
    return Bundle(spec.name, requirements, venv, spec.worker.build, spec.worker.dir)


def build(bundle: Bundle, pip_args: Sequence[str] = (), force: bool = False) -> bool:
    """Builds the bundle's venv unless it is already built; True when it built it now.

    Safe against a concurrent build of the same bundle (another `runq bundle build`, or
    `runq serve` starting a worker): one builds, the other waits and reuses it.

    Raises:
        BundleError: venv or pip failed; the message holds the end of their output.
    """
    if bundle.built and not force:
        return False
    bundle.venv.parent.mkdir(parents=True, exist_ok=True)
    with _lock(bundle.venv.with_name(bundle.venv.name + ".lock")):
        if bundle.built and not force:
            return False
        if force or not bundle.installed:
            _install(bundle, pip_args)
        if bundle.baked is not None:
            step = list(bundle.step)
            if step[0] in ("python", "python3"):
                step[0] = str(bundle.python)
            _run(bundle, step, cwd=bundle.workdir)
            bundle.baked.write_text(f"{bundle.workdir}\nbaked {time.time():.0f}\n")
    return True


def _install(bundle: Bundle, pip_args: Sequence[str]) -> None:
    shutil.rmtree(bundle.venv, ignore_errors=True)  # a build that was interrupted
    _run(bundle, [sys.executable, "-m", "venv", "--without-pip", str(bundle.venv)])
    _link_runq(bundle)
    # runq's own pip installs into the venv: the venv needs no pip of its own.
    pip = [sys.executable, "-m", "pip", "--python", str(bundle.python), "install"]
    _run(bundle, [*pip, "--disable-pip-version-check", "-r", str(bundle.requirements), *pip_args])
    (bundle.venv / MARKER).write_text(f"{bundle.requirements}\nbuilt {time.time():.0f}\n")


def _link_runq(bundle: Bundle) -> None:
    site = next(bundle.venv.glob("lib/python*/site-packages"))
    root = Path(runq.__file__).resolve().parent.parent
    # "zz" sorts last, so the venv's own packages come first on sys.path.
    (site / "zz_runq.pth").write_text(f"{root}\n")


def _run(bundle: Bundle, command: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise BundleError(
            f"bundle of '{bundle.endpoint}' ({bundle.requirements}): "
            f"{' '.join(command[:4])} ... failed with code {done.returncode}:\n{tail}"
        )


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
