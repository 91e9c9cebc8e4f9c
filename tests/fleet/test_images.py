"""Images on a host: pulled once however many workers ask at once, never pulled behind
`pull = "never"`, logins in a 0600 auth file. Against a real loopback registry (Debian's
docker-registry) and podman; skipped without them, except in CI, where they fail."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runq.core.containers_config import RegistryLogin
from runq.fleet.engine import Engine
from runq.fleet.images import Acquired, ImageError, ImageStore
from tests.images import busybox_image, engine_or_skip, loopback_registry, unavailable

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_or_skip(tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="module")
def pushed(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A busybox image in a loopback registry, absent from the engine's store."""
    try:
        registry_cm = loopback_registry(tmp_path_factory.mktemp("registry"))
        registry = registry_cm.__enter__()
    except FileNotFoundError as exc:
        unavailable(str(exc))
        raise
    ref = f"{registry}/runq-test/busybox:{secrets.token_hex(4)}"
    env = engine.environ()
    try:
        busybox_image(engine, ref)
        subprocess.run(
            engine.argv("push", "--tls-verify=false", ref), env=env, check=True, capture_output=True
        )
        subprocess.run(engine.argv("rmi", ref), env=env, check=True, capture_output=True)
        yield ref
    finally:
        subprocess.run(engine.argv("rmi", "-f", ref), env=env, capture_output=True)
        registry_cm.__exit__(None, None, None)


def test_workers_asking_at_once_share_one_pull_then_the_host_holds_it(
    engine: Engine, pushed: str, tmp_path: Path
) -> None:
    store = ImageStore(engine, tmp_path)

    async def three_then_one() -> list[Acquired]:
        together = await asyncio.gather(*(store.acquire(pushed, "missing") for _ in range(3)))
        later = await store.acquire(pushed, "missing")
        return [*together, later]

    first, second, third, later = asyncio.run(three_then_one())

    assert first is second is third  # one flight, one result
    assert first.pulled and first.image.digest.startswith("sha256:")
    assert not later.pulled
    assert later.image.id == first.image.id
    assert set(store.held()) == {pushed}


def test_pull_never_refuses_an_absent_image_and_says_what_to_do(
    engine: Engine, tmp_path: Path
) -> None:
    ref = f"localhost/runq-test-absent:{secrets.token_hex(4)}"

    with pytest.raises(ImageError, match='pull = "never"'):
        asyncio.run(ImageStore(engine, tmp_path).acquire(ref, "never"))


def test_a_failed_pull_names_the_image(engine: Engine, pushed: str, tmp_path: Path) -> None:
    missing = pushed.rsplit(":", 1)[0] + ":no-such-tag"

    with pytest.raises(ImageError, match=f"pull of {missing} failed"):
        asyncio.run(ImageStore(engine, tmp_path).acquire(missing, "always"))


def test_a_login_goes_to_a_0600_auth_file(
    engine: Engine, pushed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNQ_TEST_REGISTRY_TOKEN", "s3cret")
    server = pushed.split("/", 1)[0]
    login = RegistryLogin(server, "bot", password_env="RUNQ_TEST_REGISTRY_TOKEN")

    acquired = asyncio.run(ImageStore(engine, tmp_path).acquire(pushed, "always", login))

    assert acquired.pulled
    auth = tmp_path / "auth" / server / "config.json"  # docker's layout; podman's --authfile
    assert auth.stat().st_mode & 0o777 == 0o600
    assert json.loads(auth.read_text()) == {"auths": {server: {"auth": "Ym90OnMzY3JldA=="}}}


def test_over_its_budget_the_store_evicts_what_no_worker_uses(
    engine: Engine, pushed: str, tmp_path: Path
) -> None:
    # The user pulled it; runq's store only finds it.
    pull = engine.argv("pull", "--quiet", "--tls-verify=false", pushed)
    subprocess.run(pull, env=engine.environ(), check=True, capture_output=True)
    found = ImageStore(engine, tmp_path / "found")
    assert not asyncio.run(found.acquire(pushed, "missing")).pulled
    store = ImageStore(engine, tmp_path / "pulled")
    acquired = asyncio.run(store.acquire(pushed, "always"))

    assert asyncio.run(found.evict(1, in_use=set())) == []  # this store did not pull it
    assert asyncio.run(store.evict(1, in_use={acquired.image.id})) == []  # in use: it stays
    assert asyncio.run(store.evict(1, in_use=set())) == [pushed]

    exists = subprocess.run(engine.argv("image", "exists", pushed), env=engine.environ())
    assert exists.returncode == 1
    assert store.held() == {}
