"""The async engine: URL mapping to the async drivers and per-dialect tuning."""

from __future__ import annotations

import select
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_POSTGRES_NAMES = frozenset({"postgres", "postgresql", "postgresql+psycopg"})
_SQLITE_NAMES = frozenset({"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"})

CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 5.0
SQLITE_BUSY_TIMEOUT_MS = 5000
STATEMENT_TIMEOUT_S = 30.0
LOCK_TIMEOUT_S = 5.0
# libpq's TCP settings: an idle connection to a host that vanished is found dead
# after ~25 s of keepalive probes, and a connection whose sent data stays
# unacknowledged for 10 s (a partition) is dropped by the kernel rather than waited
# on for the ~15 minutes of default retransmissions.
TCP_SETTINGS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # milliseconds
}


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        # The message would echo the URL, password included.
        raise ValueError("DATABASE_URL is not a valid database URL") from None
    if parsed.drivername not in _POSTGRES_NAMES | _SQLITE_NAMES:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: "
            "use sqlite:///path or postgresql://..."
        )
    return parsed


def _is_sqlite(url: URL) -> bool:
    return url.drivername in _SQLITE_NAMES


def async_url(url: str) -> str:
    """`url` rewritten for the async drivers (aiosqlite, psycopg 3)."""
    parsed = _parse(url)
    driver = "sqlite+aiosqlite" if _is_sqlite(parsed) else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """`url` rewritten for the sync drivers (sqlite3, psycopg 3): used by migrations."""
    parsed = _parse(url)
    driver = "sqlite" if _is_sqlite(parsed) else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def masked_url(url: str) -> str:
    """`url` with its password hidden, safe for logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout_s: float = POOL_TIMEOUT_S,
    statement_timeout_s: float = STATEMENT_TIMEOUT_S,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
    echo: bool = False,
    max_overflow: int = 10,
) -> AsyncEngine:
    """An async engine for `url` (see `async_url`), tuned for its dialect.

    Bound parameters (job text, key hashes) never appear in error messages or logs.
    PostgreSQL: a check of each pooled connection before use (no round trip, see
    `_drop_dead_connections`), short connect / pool timeouts so that a database
    that is down fails a request within seconds, at most `pool_size +
    max_overflow` connections, TCP keepalives and a TCP user timeout so that a
    vanished server is noticed, and `statement_timeout` / `lock_timeout` on every
    session (0 leaves either off) so that a statement stuck on a lock or a
    runaway query ends with an error instead of holding its caller. None of these
    helps against a server that is stuck but still acknowledges packets: the HTTP
    adapter's request deadline covers that. SQLite: WAL, a busy timeout, foreign keys, and
    `BEGIN IMMEDIATE` transactions (see `_tune_sqlite`).
    """
    parsed = make_url(async_url(url))
    if _is_sqlite(parsed):
        return _sqlite_engine(parsed, pool_size=pool_size, pool_timeout_s=pool_timeout_s, echo=echo)
    engine = create_async_engine(
        parsed,
        echo=echo,
        hide_parameters=True,  # an error's message never carries the bound values
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        connect_args=postgres_connect_args(parsed, statement_timeout_s, lock_timeout_s),
    )
    _drop_dead_connections(engine)
    return engine


def _drop_dead_connections(engine: AsyncEngine) -> None:
    """A pooled connection is checked before use without a round trip (what
    `pool_pre_ping` costs every unit of work): an idle connection has nothing to
    read, so one that is readable has been closed or told something by the server
    (a restart, `pg_terminate_backend`, an idle timeout) and is replaced: SQLAlchemy
    reconnects that pool slot (twice at most) before handing it out. A server that
    vanished without a word is found by the TCP settings and the statement timeout
    instead."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        connection = dbapi_connection.driver_connection  # psycopg's AsyncConnection
        if connection is None or connection.closed or connection.broken:
            raise DisconnectionError("the pooled connection is closed")
        poller = select.poll()
        try:
            poller.register(connection.pgconn.socket, select.POLLIN | select.POLLPRI)
            readable = bool(poller.poll(0))
        except (OSError, psycopg.Error) as error:  # no socket any more
            raise DisconnectionError("the pooled connection has no socket") from error
        if readable:
            raise DisconnectionError("the server closed or spoke on an idle connection")


def postgres_connect_args(
    url: URL, statement_timeout_s: float, lock_timeout_s: float
) -> dict[str, Any]:
    """libpq connection parameters: timeouts, keepalives, and the session's time limits
    as startup `options` (added to any `options` the URL carries; no extra round trip)."""
    session = (
        f"-c statement_timeout={round(statement_timeout_s * 1000)} "
        f"-c lock_timeout={round(lock_timeout_s * 1000)}"
    )
    given = url.query.get("options")
    given = given[-1] if isinstance(given, tuple) else given
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        **TCP_SETTINGS,
        "options": f"{given} {session}" if given else session,
    }


def _sqlite_engine(url: URL, *, pool_size: int, pool_timeout_s: float, echo: bool) -> AsyncEngine:
    # In memory, SQLAlchemy keeps one shared connection (StaticPool, no sizing);
    # that database also dies with the engine, so it suits throwaway use only.
    in_memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = (
        {} if in_memory else {"pool_size": pool_size, "pool_timeout": pool_timeout_s}
    )
    engine = create_async_engine(url, echo=echo, hide_parameters=True, **kwargs)
    _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    """Per-connection pragmas and explicit transaction control.

    sqlite3's legacy mode does not BEGIN before a SELECT, so a unit of work
    that reads then writes would not be isolated; SQLAlchemy emits BEGIN
    instead. It is `BEGIN IMMEDIATE`: a unit of work takes the write lock at
    its start, so two read-then-write transactions queue on the busy timeout
    rather than fail with SQLITE_BUSY when the second tries to upgrade.
    Transactions are short (no LLM call runs inside one), so serialising
    them costs little in the embedded mode.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
