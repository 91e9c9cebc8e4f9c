"""Images on this host: present or pulled once (single-flight per reference), with registry
logins written to a 0600 auth file, and an index of what this host holds."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from runq.core.containers_config import RegistryLogin
from runq.core.image_ref import check_image_ref, held_keys
from runq.fleet.engine import Dialect, Engine

log = logging.getLogger("runq.fleet")


INDEX_FILE = "images.json"  # in the host's containers state dir: what runq pulled or found


class ImageError(Exception):
    """An image cannot be had on this host; the message says which and why."""


@dataclass(frozen=True)
class ImageInfo:
    """One image this host holds."""

    ref: str  # as the endpoint names it
    id: str  # the engine's image id (sha256 of its config)
    digest: str  # the registry's manifest digest ("" for a locally built image)
    size: int  # bytes, as the engine reports them
    last_used: float  # epoch seconds
    # runq pulled or built it: only such images are evicted (one the user put on the host and
    # runq merely found is never removed by runq).
    owned: bool = False


@dataclass(frozen=True)
class Acquired:
    """An image ready to run, and what getting it cost (the image_pull phase)."""

    image: ImageInfo
    pulled: bool  # False: it was already here
    seconds: float


async def run_engine(
    engine: Engine, *args: str, timeout: float = 600, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the engine's CLI (with `env` over its environment); (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        *engine.argv(*args),
        env={**engine.environ(), **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, "", f"timed out after {timeout:g}s"
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def loopback_registry(ref: str) -> bool:
    """A registry on this machine (a test or a local mirror): spoken to without TLS."""
    name = check_image_ref(ref).name
    host = name.split("/", 1)[0] if "/" in name else ""
    return host.split(":", 1)[0] in ("localhost", "127.0.0.1") and ":" in host


def pull_argv(dialect: Dialect, ref: str, auth: Path | None) -> tuple[list[str], dict[str, str]]:
    """The engine's `pull` of `ref` (the arguments after its binary) and the variables it
    needs, with the login in `auth` (a containers-auth.json, docker's config.json layout).

    podman takes the file (`--authfile`) and must be told that a loopback registry speaks no
    TLS; docker reads DIR/config.json from DOCKER_CONFIG and trusts 127.0.0.0/8 already (it
    has no --tls-verify flag).

    >>> from runq.fleet.engine import DIALECTS
    >>> pull_argv(DIALECTS["podman"], "localhost:5000/w:1", None)
    (['pull', '--quiet', '--tls-verify=false', 'localhost:5000/w:1'], {})
    >>> pull_argv(DIALECTS["docker"], "reg.example/w:1", Path("/d/auth/reg/config.json"))
    (['pull', '--quiet', 'reg.example/w:1'], {'DOCKER_CONFIG': '/d/auth/reg'})
    """
    args = ["pull", "--quiet"]
    env: dict[str, str] = {}
    podman = dialect.name == "podman"
    if podman and loopback_registry(ref):
        args.append("--tls-verify=false")
    if auth is not None and podman:
        args += ["--authfile", str(auth)]
    elif auth is not None:
        env["DOCKER_CONFIG"] = str(auth.parent)
    return [*args, ref], env


class ImageStore:
    """This host's images, as seen through one engine."""

    def __init__(self, engine: Engine, state_dir: Path) -> None:
        self._engine = engine
        self._dir = state_dir
        self._flights: dict[str, asyncio.Task[Acquired]] = {}
        self._index_path = state_dir / INDEX_FILE

    async def inspect(self, ref: str) -> ImageInfo | None:
        code, out, _ = await run_engine(self._engine, "image", "inspect", ref, timeout=60)
        try:
            found = json.loads(out) if code == 0 else []
        except ValueError:
            found = []
        if not isinstance(found, list) or not found or not isinstance(found[0], dict):
            return None
        data = found[0]
        digests = data.get("RepoDigests") or []
        digest = digests[0].rsplit("@", 1)[-1] if digests else ""
        return ImageInfo(
            ref, str(data.get("Id", "")), digest, int(data.get("Size", 0)), time.time()
        )

    async def acquire(
        self, ref: str, policy: str, login: RegistryLogin | None = None, built: bool = False
    ) -> Acquired:
        """The image, pulled if `policy` asks for it. Concurrent calls for one reference share
        one pull (a fleet scaling out from zero pulls once, not once per worker). `built`: runq
        built `ref` (a worker folder's image), so it is runq's to evict like a pulled one.

        Raises:
            ImageError: pull = "never" and it is absent, or the pull failed.
        """
        flight = self._flights.get(ref)
        if flight is None:
            flight = asyncio.create_task(self._acquire(ref, policy, login, built))
            self._flights[ref] = flight
            flight.add_done_callback(lambda _: self._flights.pop(ref, None))
        return await asyncio.shield(flight)

    async def _acquire(
        self, ref: str, policy: str, login: RegistryLogin | None, built: bool
    ) -> Acquired:
        started = time.perf_counter()
        if policy != "always":
            found = await self.inspect(ref)
            if found is not None:
                found = self._record(replace(found, owned=built))
                return Acquired(found, False, time.perf_counter() - started)
            if policy == "never":
                raise ImageError(
                    f'image {ref} is not on this host and [worker.container] pull = "never": '
                    "pull or build it first (runq bundle build), or allow pulls"
                )
        auth = self._auth_file(login) if login is not None else None
        args, env = pull_argv(self._engine.dialect, ref, auth)
        log.info("pulling image %s", ref)
        code, _, err = await run_engine(self._engine, *args, env=env)
        if code != 0:
            lines = err.strip().splitlines()
            raise ImageError(f"pull of {ref} failed: {lines[-1] if lines else f'exit {code}'}")
        found = await self.inspect(ref)
        if found is None:
            raise ImageError(f"pull of {ref} succeeded but the engine cannot find it")
        found = self._record(replace(found, owned=True))
        return Acquired(found, True, time.perf_counter() - started)

    def _auth_file(self, login: RegistryLogin) -> Path:
        """A containers-auth.json for one login, 0600 (the engine reads it; nobody else may)."""
        secret = login.password_env and os.environ.get(login.password_env)
        if not secret and login.password_file:
            try:
                secret = Path(login.password_file).read_text().strip()
            except OSError as exc:
                message = f"registry {login.server}: cannot read password file: {exc}"
                raise ImageError(message) from None
        if not secret:
            raise ImageError(f"registry {login.server}: ${login.password_env} is not set")
        token = base64.b64encode(f"{login.username}:{secret}".encode()).decode()
        folder = self._dir / "auth" / login.server.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / "config.json"
        text = json.dumps({"auths": {login.server: {"auth": token}}})
        tmp = folder / "config.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text)
        tmp.replace(path)
        return path

    async def evict(self, budget: int, in_use: set[str]) -> list[str]:
        """Remove the images this store recorded, least recently used first, until they fit
        in `budget` bytes; never one whose id is in `in_use`. Returns the references removed
        (the engine refuses one a container still uses: it stays)."""
        removed: list[str] = []
        for ref in choose_evictions(self.held(), budget, in_use):
            code, _, err = await run_engine(self._engine, "rmi", ref, timeout=120)
            if code == 0:
                removed.append(ref)
            else:
                log.warning("could not evict image %s: %s", ref, err.strip()[-200:])
        if removed:
            index = {ref: asdict(row) for ref, row in self.held().items() if ref not in removed}
            self._write(index)
            log.info("evicted images %s (image store over its budget)", ", ".join(removed))
        return removed

    def held(self) -> dict[str, ImageInfo]:
        """Which images this host holds (by reference), as last recorded."""
        return read_index(self._dir)

    def _record(self, info: ImageInfo) -> ImageInfo:
        """Note that the host holds `info` now; what runq pulled or built stays runq's."""
        held = self.held()
        before = held.get(info.ref)
        if before is not None and before.owned and before.id == info.id:
            info = replace(info, owned=True)
        index = {ref: asdict(row) for ref, row in held.items()}
        index[info.ref] = asdict(info)
        self._write(index)
        return info

    def _write(self, index: dict[str, dict[str, object]]) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=1))
        tmp.replace(self._index_path)


def read_index(state_dir: Path) -> dict[str, ImageInfo]:
    """The images a host's store recorded (by reference), read without asking the engine:
    placement reads it every scheduler tick."""
    try:
        raw = json.loads((state_dir / INDEX_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    found: dict[str, ImageInfo] = {}
    for ref, row in raw.items():
        with contextlib.suppress(TypeError):
            found[ref] = ImageInfo(**row)
    return found


def index_keys(held: Mapping[str, ImageInfo]) -> tuple[str, ...]:
    """Every name placement may look for among `held` (`runq.core.image_ref.held_keys`)."""
    keys = (key for ref, info in held.items() for key in held_keys(ref, info.digest))
    return tuple(sorted(set(keys)))


def choose_evictions(held: Mapping[str, ImageInfo], budget: int, in_use: set[str]) -> list[str]:
    """Which images to remove so the rest fit in `budget` bytes: least recently used first,
    skipping those in use and those runq did not pull or build (they count, as they take the
    room, but stay: the user put them there). A budget of 0 means no limit.

    Example: a (3 GB, used at 10), b (2 GB, at 20), c (4 GB, at 30), budget 5 GB: 9 GB held;
    remove a (6 GB left), then b (4 GB): ["a", "b"]. With a in use: b, then c: ["b", "c"].
    """
    if budget <= 0:
        return []
    total = sum(info.size for info in held.values())
    chosen: list[str] = []
    for ref, info in sorted(held.items(), key=lambda item: item[1].last_used):
        if total <= budget:
            break
        if info.id in in_use or not info.owned:
            continue
        chosen.append(ref)
        total -= info.size
    return chosen
