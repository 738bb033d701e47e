"""API keys: make, check, list and revoke the keys that own jobs."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from application.ports import ApiKeyStore, Clock
from domain import ApiKey

_PREFIX = "gi"
# Compared against when the key id is unknown, so a miss costs what a hit costs.
_CACHE_MAX = 10_000
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def hash_secret(secret: str) -> str:
    # The secret has 256 random bits: a fast hash is enough (nothing to brute-force).
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    record: ApiKey
    token: str  # shown once, never stored


class CreateApiKey:
    """Rules: the key is `gi_<id>_<secret>` with 256 random bits of secret;
    only the secret's hash is stored; the token is returned once."""

    def __init__(self, store: ApiKeyStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def execute(self, owner: str) -> IssuedKey:
        if not owner or not owner.isprintable() or len(owner) > 128:
            raise ValueError("OWNER must be 1-128 printable characters")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        record = ApiKey(key_id, owner, hash_secret(secret), self._clock.now())
        await self._store.add(record)
        return IssuedKey(record, f"{_PREFIX}_{key_id}_{secret}")


class AuthenticateApiKey:
    """Rules: a key that is malformed, unknown, revoked or wrong gives None;
    the secret is compared in constant time. With `cache_ttl_s`, a key's record
    is kept that long in memory (one database read saved per request); a revoke
    made in this process takes effect at once, one made elsewhere within the TTL."""

    def __init__(
        self,
        store: ApiKeyStore,
        cache_ttl_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = cache_ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}

    async def execute(self, token: str) -> str | None:
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != _PREFIX or not key_id or not secret:
            return None
        record = await self._record(key_id)
        expected = record.secret_hash if record else _DUMMY_HASH
        matches = hmac.compare_digest(hash_secret(secret), expected)
        if record is None or not matches or record.revoked_at is not None:
            return None
        return record.owner

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

    async def _record(self, key_id: str) -> ApiKey | None:
        if self._ttl <= 0:
            return await self._store.get(key_id)
        now = self._monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        record = await self._store.get(key_id)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key_id] = (record, now + self._ttl)
        return record


class ListApiKeys:
    def __init__(self, store: ApiKeyStore) -> None:
        self._store = store

    async def execute(self) -> list[ApiKey]:
        return await self._store.all()


class RevokeApiKey:
    def __init__(
        self, store: ApiKeyStore, clock: Clock, authenticator: AuthenticateApiKey | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._authenticator = authenticator

    async def execute(self, key_id: str) -> bool:
        revoked = await self._store.revoke(key_id, self._clock.now())
        if self._authenticator is not None:
            self._authenticator.forget(key_id)
        return revoked
