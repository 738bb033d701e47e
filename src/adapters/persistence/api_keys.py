"""API keys in SQL; each call is its own short transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.persistence.errors import translate_errors
from adapters.persistence.tables import api_keys
from domain import ApiKey


def _to_key(row: RowMapping) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        owner=row["owner"],
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class SqlApiKeyStore:
    """`ApiKeyStore` on an engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @translate_errors
    async def add(self, key: ApiKey) -> None:
        """Store `key`; a `ValueError` if its id is taken (ids are random: a bug)."""
        row = {
            "key_id": key.key_id,
            "owner": key.owner,
            "secret_hash": key.secret_hash,
            "created_at": key.created_at,
            "revoked_at": key.revoked_at,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(api_keys).values(row))
        except IntegrityError as error:
            raise ValueError(f"an API key with id {key.key_id!r} already exists") from error

    @translate_errors
    async def get(self, key_id: str) -> ApiKey | None:
        async with self._engine.begin() as conn:
            query = select(api_keys).where(api_keys.c.key_id == key_id)
            row = (await conn.execute(query)).mappings().one_or_none()
        return _to_key(row) if row is not None else None

    @translate_errors
    async def all(self) -> list[ApiKey]:
        async with self._engine.begin() as conn:
            query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
            rows = (await conn.execute(query)).mappings().all()
        return [_to_key(row) for row in rows]

    @translate_errors
    async def revoke(self, key_id: str, now: datetime) -> bool:
        """Revoke an active key; False when there is no such key or it was revoked already."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return result.rowcount > 0
