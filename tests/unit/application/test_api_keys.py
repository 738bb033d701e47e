"""API keys: `gi_<id>_<secret>`, stored only as a hash; anything wrong authenticates nobody."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from fakes import FakeClock, InMemoryApiKeyStore
from postgres_backend import empty_database

from adapters.persistence import SqlApiKeyStore
from application.ports import ApiKeyStore
from application.use_cases.api_keys import (
    AuthenticateApiKey,
    CreateApiKey,
    IssuedKey,
    ListApiKeys,
    RevokeApiKey,
    hash_secret,
)
from domain import ApiKey


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def keys(request: pytest.FixtureRequest) -> AsyncIterator[ApiKeyStore]:
    """The key store, in memory and the SQL one on PostgreSQL, in turn."""
    if request.param == "memory":
        yield InMemoryApiKeyStore()
        return
    engine = await empty_database(request.getfixturevalue("unit_database_url"))
    try:
        yield SqlApiKeyStore(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def authenticate(keys: ApiKeyStore) -> AuthenticateApiKey:
    return AuthenticateApiKey(keys)


@pytest.fixture
async def issued(keys: ApiKeyStore, clock: FakeClock) -> IssuedKey:
    return await CreateApiKey(keys, clock).execute("alice")


async def test_create_gives_a_prefixed_token_and_stores_only_a_hash(
    issued: IssuedKey, keys: ApiKeyStore, clock: FakeClock
) -> None:
    match = re.fullmatch(r"gi_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", issued.token)
    assert match is not None, issued.token
    key_id, secret = match.groups()
    record = await keys.get(key_id)
    assert record == issued.record
    assert (record.owner, record.created_at, record.revoked_at) == ("alice", clock.now(), None)
    assert record.secret_hash == hash_secret(secret)
    assert secret not in repr(record)
    assert secret not in record.secret_hash


async def test_every_key_is_different(keys: ApiKeyStore, clock: FakeClock) -> None:
    create = CreateApiKey(keys, clock)
    tokens = {(await create.execute("alice")).token for _ in range(20)}
    assert len(tokens) == 20
    assert len(await keys.all()) == 20


@pytest.mark.parametrize("owner", ["", "a\nb", "x" * 129])
async def test_a_bad_owner_is_refused(keys: ApiKeyStore, clock: FakeClock, owner: str) -> None:
    with pytest.raises(ValueError, match="OWNER"):
        await CreateApiKey(keys, clock).execute(owner)
    assert await keys.all() == []


async def test_the_right_token_authenticates_its_owner(
    issued: IssuedKey, authenticate: AuthenticateApiKey
) -> None:
    assert await authenticate.execute(issued.token) == "alice"


async def test_a_wrong_secret_authenticates_nobody(
    issued: IssuedKey, authenticate: AuthenticateApiKey
) -> None:
    prefix, key_id, _ = issued.token.split("_", 2)
    assert await authenticate.execute(f"{prefix}_{key_id}_{'A' * 43}") is None
    assert await authenticate.execute(issued.token[:-1]) is None


async def test_an_unknown_id_authenticates_nobody(
    issued: IssuedKey, authenticate: AuthenticateApiKey
) -> None:
    _, _, secret = issued.token.split("_", 2)
    assert await authenticate.execute(f"gi_{'0' * 16}_{secret}") is None


@pytest.mark.parametrize(
    "token",
    ["", "gi", "gi_", "gi__", "gi_abc", "gi_abc_", "gi__secret", "xx_abc_secret", "Bearer gi_a_b"],
)
async def test_a_malformed_token_authenticates_nobody(
    issued: IssuedKey, authenticate: AuthenticateApiKey, token: str
) -> None:
    assert await authenticate.execute(token) is None


async def test_a_token_with_another_prefix_authenticates_nobody(
    issued: IssuedKey, authenticate: AuthenticateApiKey
) -> None:
    assert await authenticate.execute("xx" + issued.token[2:]) is None


async def test_a_revoked_key_authenticates_nobody(
    issued: IssuedKey,
    keys: ApiKeyStore,
    authenticate: AuthenticateApiKey,
    clock: FakeClock,
) -> None:
    revoke = RevokeApiKey(keys, clock)
    assert await revoke.execute(issued.record.key_id) is True
    assert await authenticate.execute(issued.token) is None
    revoked = await keys.get(issued.record.key_id)
    assert revoked is not None
    assert revoked.revoked_at == clock.now()
    assert await revoke.execute(issued.record.key_id) is False
    assert await revoke.execute("nope") is False


async def test_list_shows_records_without_secrets(issued: IssuedKey, keys: ApiKeyStore) -> None:
    listed = await ListApiKeys(keys).execute()
    assert listed == [issued.record]
    _, _, secret = issued.token.split("_", 2)
    assert all(secret not in repr(k) for k in listed)


class CountingStore:
    """`keys`, counting the reads of one key."""

    def __init__(self, inner: ApiKeyStore) -> None:
        self._inner = inner
        self.reads = 0

    async def add(self, key: ApiKey) -> None:
        await self._inner.add(key)

    async def get(self, key_id: str) -> ApiKey | None:
        self.reads += 1
        return await self._inner.get(key_id)

    async def all(self) -> list[ApiKey]:
        return await self._inner.all()

    async def revoke(self, key_id: str, now: datetime) -> bool:
        return await self._inner.revoke(key_id, now)


async def test_the_cache_saves_reads_until_its_ttl_runs_out(
    keys: ApiKeyStore, clock: FakeClock
) -> None:
    store = CountingStore(keys)
    token = (await CreateApiKey(store, clock).execute("alice")).token
    now = [100.0]
    cached = AuthenticateApiKey(store, cache_ttl_s=10, monotonic=lambda: now[0])

    assert [await cached.execute(token) for _ in range(3)] == ["alice"] * 3
    assert store.reads == 1
    assert await cached.execute(token[:-1] + "x") is None  # a wrong secret, still refused
    now[0] += 11
    assert await cached.execute(token) == "alice"
    assert store.reads == 2


async def test_a_revoke_in_this_process_empties_the_cache_at_once(
    keys: ApiKeyStore, clock: FakeClock
) -> None:
    store = CountingStore(keys)
    issued = await CreateApiKey(store, clock).execute("alice")
    cached = AuthenticateApiKey(store, cache_ttl_s=3600)
    assert await cached.execute(issued.token) == "alice"

    assert await RevokeApiKey(store, clock, cached).execute(issued.record.key_id)
    assert await cached.execute(issued.token) is None


def _bogus(n: int) -> str:
    return f"gi_{n:016x}_{'s' * 43}"


async def test_a_flood_of_unknown_ids_never_evicts_a_known_key(clock: FakeClock) -> None:
    """20,000 well-formed bogus keys (twice the old shared cap) leave the good keys cached."""
    store = CountingStore(InMemoryApiKeyStore())
    tokens = [(await CreateApiKey(store, clock).execute(f"owner{n}")).token for n in range(3)]
    cached = AuthenticateApiKey(store, cache_ttl_s=3600, monotonic=lambda: 100.0)
    assert [await cached.execute(t) for t in tokens] == ["owner0", "owner1", "owner2"]

    for n in range(20_000):
        assert await cached.execute(_bogus(n)) is None
    reads = store.reads
    assert [await cached.execute(t) for t in tokens] == ["owner0", "owner1", "owner2"]
    assert store.reads == reads  # still cached: no read


async def test_unknown_ids_are_cached_up_to_their_bound(clock: FakeClock) -> None:
    """A repeated bogus id costs one read while cached; the oldest go first past the bound."""
    store = CountingStore(InMemoryApiKeyStore())
    cached = AuthenticateApiKey(store, cache_ttl_s=3600, monotonic=lambda: 100.0, unknown_max=3)
    for _ in range(5):
        assert await cached.execute(_bogus(1)) is None
    assert store.reads == 1
    for n in (2, 3, 4):  # the fourth pushes id 1 out
        await cached.execute(_bogus(n))
    assert store.reads == 4
    await cached.execute(_bogus(4))
    assert store.reads == 4  # still cached
    await cached.execute(_bogus(1))
    assert store.reads == 5  # evicted, read again


async def test_known_keys_have_a_bound_of_their_own(clock: FakeClock) -> None:
    store = CountingStore(InMemoryApiKeyStore())
    tokens = [(await CreateApiKey(store, clock).execute(f"o{n}")).token for n in range(3)]
    cached = AuthenticateApiKey(store, cache_ttl_s=3600, monotonic=lambda: 100.0, known_max=2)
    for token in tokens:
        await cached.execute(token)
    assert store.reads == 3
    await cached.execute(tokens[2])
    await cached.execute(tokens[1])
    assert store.reads == 3
    await cached.execute(tokens[0])  # the oldest was pushed out by the third
    assert store.reads == 4


async def test_a_refused_id_is_looked_up_again_once_its_entry_expires(
    clock: FakeClock,
) -> None:
    store = CountingStore(InMemoryApiKeyStore())
    now = [100.0]
    cached = AuthenticateApiKey(store, cache_ttl_s=10, monotonic=lambda: now[0])
    issued = await CreateApiKey(InMemoryApiKeyStore(), clock).execute("alice")
    assert await cached.execute(issued.token) is None  # not in this store yet
    await store.add(issued.record)
    assert await cached.execute(issued.token) is None  # the refusal is cached...
    now[0] += 11
    assert await cached.execute(issued.token) == "alice"  # ...for the TTL only
