"""ApiKeys: who may call what, on a real SQLite store, with a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runq.api.auth import ApiKeys, key_from_headers
from runq.core.keys import hash_key
from runq.errors import BadRequest, Forbidden, NotFound, RateLimited, Unauthorized
from runq.store.sqlite import SqliteJobStore

BOOTSTRAP = "bootstrap-secret"


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    opened = SqliteJobStore(tmp_path / "runq.db", clock=lambda: 1000.0)
    await opened.open()
    yield opened
    await opened.close()


async def make_keys(
    store: SqliteJobStore, rate_limit: float = 0.0, clock: FakeClock | None = None
) -> ApiKeys:
    keys = ApiKeys(BOOTSTRAP, store, rate_limit, clock or FakeClock())
    await keys.load()
    return keys


# Who asks, for what, and the answer: "ok" or the error class and a part of its message.
CHECK_CASES = [
    pytest.param("bootstrap", "echo", "ok", id="the bootstrap key invokes any endpoint"),
    pytest.param("admin", "echo", "ok", id="an admin key invokes any endpoint"),
    pytest.param("ci", "echo", "ok", id="an invoke key invokes its endpoint"),
    pytest.param("ci", "other", (Forbidden, "key 'ci' may not invoke endpoint 'other'"),
                 id="an invoke key may not invoke another endpoint"),
    pytest.param("", "echo", (Unauthorized, "missing or invalid API key"), id="no key"),
    pytest.param("wrong", "echo", (Unauthorized, "missing or invalid API key"),
                 id="an unknown key"),
    pytest.param("revoked", "echo", (Unauthorized, "API key 'old' was revoked"),
                 id="a revoked key"),
]  # fmt: skip


@pytest.mark.parametrize(("who", "endpoint", "answer"), CHECK_CASES)
async def test_check(
    store: SqliteJobStore, who: str, endpoint: str, answer: str | tuple[type[Exception], str]
) -> None:
    keys = await make_keys(store)
    _, admin = await keys.create("ops", ("admin",))
    _, ci = await keys.create("ci", ("invoke:echo",))
    old, revoked = await keys.create("old", ("invoke:echo",))
    await keys.revoke(old.id)
    text = {"bootstrap": BOOTSTRAP, "admin": admin, "ci": ci, "revoked": revoked}.get(who, who)

    if answer == "ok":
        assert keys.check(text, endpoint).may_invoke(endpoint)
    else:
        assert isinstance(answer, tuple)
        kind, message = answer
        with pytest.raises(kind, match=message):
            keys.check(text, endpoint)


ADMIN_CASES = [
    pytest.param("bootstrap", None, id="the bootstrap key is an admin key"),
    pytest.param("admin", None, id="a key with the admin scope is one"),
    pytest.param("ci", (Forbidden, "key 'ci' is not an admin key: it may only invoke 'echo'"),
                 id="an invoke key is refused with 403, naming what it may do"),
    pytest.param("wrong", (Unauthorized, "missing or invalid"), id="an unknown key gets 401"),
]  # fmt: skip


@pytest.mark.parametrize(("who", "refusal"), ADMIN_CASES)
async def test_check_admin(
    store: SqliteJobStore, who: str, refusal: tuple[type, str] | None
) -> None:
    keys = await make_keys(store)
    _, admin = await keys.create("ops", ("admin",))
    _, ci = await keys.create("ci", ("invoke:echo",))
    text = {"bootstrap": BOOTSTRAP, "admin": admin, "ci": ci}.get(who, who)

    if refusal is None:
        assert keys.check_admin(text).is_admin
    else:
        with pytest.raises(refusal[0], match=refusal[1]):
            keys.check_admin(text)


async def test_keys_are_stored_as_hashes_and_a_restart_still_knows_them(
    store: SqliteJobStore,
) -> None:
    keys = await make_keys(store)
    record, text = await keys.create("ci", ("invoke:echo",))
    gone, gone_text = await keys.create("gone", ("admin",))
    await keys.revoke(gone.id)

    stored = await store.api_keys()
    assert [key.hash for key in stored] == [hash_key(text), hash_key(gone_text)]
    assert text not in repr(stored) and record.hash == hash_key(text)
    restarted = await make_keys(store)
    assert restarted.check(text, "echo").id == record.id
    with pytest.raises(Unauthorized, match="revoked"):
        restarted.check(gone_text, "echo")
    assert [key.id for key in restarted.listed()] == [record.id, gone.id]


async def test_the_bootstrap_key_cannot_be_revoked_and_is_not_listed(
    store: SqliteJobStore,
) -> None:
    keys = await make_keys(store)

    with pytest.raises(BadRequest, match="RUNQ_API_KEY"):
        await keys.revoke("bootstrap")
    with pytest.raises(NotFound, match="no-such"):
        await keys.revoke("no-such")
    assert keys.listed() == []
    assert keys.check_admin(BOOTSTRAP).id == "bootstrap"


async def test_rate_limit_is_per_key_and_refills_with_time(store: SqliteJobStore) -> None:
    clock = FakeClock()
    keys = await make_keys(store, rate_limit=2, clock=clock)
    _, ci = await keys.create("ci", ("invoke:echo",))

    keys.check(ci, "echo")
    keys.check(ci, "echo")  # a burst of 2
    with pytest.raises(RateLimited, match="key 'ci' is over its rate limit of 2") as refused:
        keys.check(ci, "echo")
    assert refused.value.retry_after_s == 1
    keys.check(BOOTSTRAP, "echo")  # another key has its own bucket
    with pytest.raises(Forbidden):
        keys.check(ci, "other")  # scope comes before the rate: a refusal spends nothing
    clock.now += 0.5  # one token back (0.5 s * 2/s)
    keys.check(ci, "echo")
    with pytest.raises(RateLimited):
        keys.check(ci, "echo")
    keys.check_admin(BOOTSTRAP)  # admin routes are not rate limited
    keys.check_admin(BOOTSTRAP)
    keys.check_admin(BOOTSTRAP)


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ([(b"authorization", b"Bearer abc")], "abc"),
        ([(b"authorization", b"bearer  abc ")], "abc"),
        ([(b"host", b"x"), (b"authorization", b"abc")], "abc"),
        ([(b"host", b"x")], ""),
    ],
    ids=["bearer", "lower-case bearer, spaces", "raw key", "no header"],
)
def test_key_from_raw_asgi_headers(headers: list[tuple[bytes, bytes]], key: str) -> None:
    assert key_from_headers(headers) == key
