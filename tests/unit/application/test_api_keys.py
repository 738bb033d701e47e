"""API keys: `gi_<id>_<secret>`, stored only as a hash; anything wrong authenticates nobody."""

from __future__ import annotations

import re

import pytest
from fakes import FakeClock, InMemoryApiKeyStore

from application.use_cases.api_keys import (
    AuthenticateApiKey,
    CreateApiKey,
    IssuedKey,
    ListApiKeys,
    RevokeApiKey,
    hash_secret,
)
from domain import ApiKey


@pytest.fixture
def keys() -> InMemoryApiKeyStore:
    return InMemoryApiKeyStore()


@pytest.fixture
def authenticate(keys: InMemoryApiKeyStore) -> AuthenticateApiKey:
    return AuthenticateApiKey(keys)


@pytest.fixture
async def issued(keys: InMemoryApiKeyStore, clock: FakeClock) -> IssuedKey:
    return await CreateApiKey(keys, clock).execute("alice")


async def test_create_gives_a_prefixed_token_and_stores_only_a_hash(
    issued: IssuedKey, keys: InMemoryApiKeyStore, clock: FakeClock
) -> None:
    match = re.fullmatch(r"gi_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", issued.token)
    assert match is not None, issued.token
    key_id, secret = match.groups()
    record = keys.keys[key_id]
    assert record == issued.record
    assert (record.owner, record.created_at, record.revoked_at) == ("alice", clock.now(), None)
    assert record.secret_hash == hash_secret(secret)
    assert secret not in repr(record)
    assert secret not in record.secret_hash


async def test_every_key_is_different(keys: InMemoryApiKeyStore, clock: FakeClock) -> None:
    create = CreateApiKey(keys, clock)
    tokens = {(await create.execute("alice")).token for _ in range(20)}
    assert len(tokens) == 20
    assert len(keys.keys) == 20


@pytest.mark.parametrize("owner", ["", "a\nb", "x" * 129])
async def test_a_bad_owner_is_refused(
    keys: InMemoryApiKeyStore, clock: FakeClock, owner: str
) -> None:
    with pytest.raises(ValueError, match="OWNER"):
        await CreateApiKey(keys, clock).execute(owner)
    assert keys.keys == {}


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
    keys: InMemoryApiKeyStore,
    authenticate: AuthenticateApiKey,
    clock: FakeClock,
) -> None:
    revoke = RevokeApiKey(keys, clock)
    assert await revoke.execute(issued.record.key_id) is True
    assert await authenticate.execute(issued.token) is None
    assert keys.keys[issued.record.key_id].revoked_at == clock.now()
    assert await revoke.execute(issued.record.key_id) is False
    assert await revoke.execute("nope") is False


async def test_list_shows_records_without_secrets(
    issued: IssuedKey, keys: InMemoryApiKeyStore
) -> None:
    listed = await ListApiKeys(keys).execute()
    assert listed == [issued.record]
    _, _, secret = issued.token.split("_", 2)
    assert all(secret not in repr(k) for k in listed)


class CountingStore(InMemoryApiKeyStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, key_id: str) -> ApiKey | None:
        self.reads += 1
        return await super().get(key_id)


async def test_the_cache_saves_reads_until_its_ttl_runs_out(clock: FakeClock) -> None:
    store = CountingStore()
    token = (await CreateApiKey(store, clock).execute("alice")).token
    now = [100.0]
    cached = AuthenticateApiKey(store, cache_ttl_s=10, monotonic=lambda: now[0])

    assert [await cached.execute(token) for _ in range(3)] == ["alice"] * 3
    assert store.reads == 1
    assert await cached.execute(token[:-1] + "x") is None  # a wrong secret, still refused
    now[0] += 11
    assert await cached.execute(token) == "alice"
    assert store.reads == 2


async def test_a_revoke_in_this_process_empties_the_cache_at_once(clock: FakeClock) -> None:
    store = CountingStore()
    issued = await CreateApiKey(store, clock).execute("alice")
    cached = AuthenticateApiKey(store, cache_ttl_s=3600)
    assert await cached.execute(issued.token) == "alice"

    assert await RevokeApiKey(store, clock, cached).execute(issued.record.key_id)
    assert await cached.execute(issued.token) is None
