"""Passwords of the database and broker URLs: given apart from the URL, and checked.

`DATABASE_PASSWORD` / `CELERY_BROKER_PASSWORD` (or their `_FILE` forms, e.g. a
compose secret) are put into `DATABASE_URL` / `CELERY_BROKER_URL`, percent-encoded,
so that a URL in a plain environment variable need not hold the secret.

In production mode (a broker is configured) the service refuses to start when
either password is a known placeholder (`change-me`, `password`, ...) or equals
the user name, or is empty while the server is not on this host (loopback or a
Unix socket, where the server's own local authentication applies). Messages name
the variable, never the value.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = ["PLACEHOLDER_PASSWORDS", "check_password", "with_password"]

PLACEHOLDER_PASSWORDS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "changeit",
        "password",
        "passw0rd",
        "secret",
        "postgres",
        "redis",
        "guideline",
        "admin",
        "root",
        "default",
        "example",
        "test",
        "123456",
        "12345678",
        "qwerty",
        "letmein",
    }
)

_LOCAL_HOSTS = frozenset({"localhost", "::1", ""})


def with_password(url: str, password: str, url_name: str, password_name: str) -> str:
    """`url` with `password` (percent-encoded) as its password; the URL must have none."""
    parts = urlsplit(url)
    if parts.password is not None:
        raise ValueError(f"{password_name}: {url_name} has a password already; give only one")
    host = parts.netloc.rpartition("@")[2]
    user = quote(unquote(parts.username or ""), safe="")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _is_local(host: str | None) -> bool:
    if host is None or host.startswith("/") or host in _LOCAL_HOSTS:
        return True
    return host.startswith("127.")


def check_password(url: str, url_name: str) -> None:
    """Raise ValueError (naming `url_name`) if the URL's password is weak; see the module."""
    parts = urlsplit(url)
    if url.startswith("sqlite"):
        return
    password = unquote(parts.password) if parts.password is not None else ""
    user = unquote(parts.username or "")
    if not password:
        if _is_local(parts.hostname):
            return
        raise ValueError(
            f"{url_name}: the password is empty; production mode (CELERY_BROKER_URL set) "
            "needs one for a server on another host"
        )
    if password.strip().lower() in PLACEHOLDER_PASSWORDS or password == user:
        raise ValueError(
            f"{url_name}: the password is a known placeholder or the user name; "
            "set a real one (e.g. `openssl rand -hex 24`)"
        )
