"""API keys: make, check, list and revoke the keys that own jobs."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from application.ports import ApiKeyStore, Clock
from domain import ApiKey

_PREFIX = "gi"
# Records of keys that exist: bounded by the key table itself, capped all the same.
KNOWN_KEYS_MAX = 10_000
# Ids that match no key. A flood of bogus ids churns only these, never the known keys.
UNKNOWN_KEYS_MAX = 1_000
# Compared against when the key id is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()

V = TypeVar("V")


class _ExpiringCache(Generic[V]):
    """At most `max_entries` values, each kept until its expiry; the oldest goes first."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[V, float]] = OrderedDict()

    def get(self, key: str, now: float) -> tuple[V] | None:
        """`(value,)` while it is fresh, else None."""
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            return None
        return (entry[0],)

    def put(self, key: str, value: V, expires: float) -> None:
        self._entries.pop(key, None)
        while len(self._entries) >= self._max:
            self._entries.popitem(last=False)
        self._entries[key] = (value, expires)

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


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
    made in this process takes effect at once, one made elsewhere within the TTL.
    Known keys and unknown ids are cached apart, each bounded: bogus ids, however
    many, never push a known key out (the HTTP adapter limits how many failures
    one client address may cause)."""

    def __init__(
        self,
        store: ApiKeyStore,
        cache_ttl_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        known_max: int = KNOWN_KEYS_MAX,
        unknown_max: int = UNKNOWN_KEYS_MAX,
    ) -> None:
        self._store = store
        self._ttl = cache_ttl_s
        self._monotonic = monotonic
        self._known: _ExpiringCache[ApiKey] = _ExpiringCache(known_max)
        self._unknown: _ExpiringCache[None] = _ExpiringCache(unknown_max)

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
        self._known.pop(key_id)
        self._unknown.pop(key_id)

    async def _record(self, key_id: str) -> ApiKey | None:
        if self._ttl <= 0:
            return await self._store.get(key_id)
        now = self._monotonic()
        cached = self._known.get(key_id, now) or self._unknown.get(key_id, now)
        if cached is not None:
            return cached[0]
        record = await self._store.get(key_id)
        if record is None:
            self._unknown.put(key_id, None, now + self._ttl)
        else:
            self._unknown.pop(key_id)
            self._known.put(key_id, record, now + self._ttl)
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
