"""Translation of SQLAlchemy's exceptions into the ports' errors, at the boundary."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

from application.errors import StorageUnavailable

P = ParamSpec("P")
R = TypeVar("R")


# sqlite3 reports SQL mistakes ("no such table", syntax) as OperationalError
# too; its primary result code SQLITE_ERROR tells them from busy/locked/
# cannot-open/I/O failures, which are outages.
_SQLITE_ERROR = 1


def _is_sql_mistake(error: sa_exc.DBAPIError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == _SQLITE_ERROR


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached or used right now."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return isinstance(
            error, sa_exc.OperationalError | sa_exc.InterfaceError
        ) and not _is_sql_mistake(error)
    # sqlalchemy.exc.TimeoutError is the pool's "no connection free in time".
    return isinstance(error, sa_exc.TimeoutError | ConnectionError | TimeoutError)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn "the database is unreachable" into `StorageUnavailable`."""
    try:
        yield
    except (sa_exc.SQLAlchemyError, OSError) as error:
        if is_unavailable(error):
            raise StorageUnavailable("the database is unavailable") from error
        raise


def translate_errors(
    method: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorate an async method so its storage failures leave as `StorageUnavailable`."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with storage_errors():
            return await method(*args, **kwargs)

    return wrapper
