"""Typed settings, read once from the environment (names and defaults: ARCHITECTURE.md).

A bad value stops the process at start with a message naming the variable.
A secret may also come from the file that `<NAME>_FILE` names (Docker secrets).
A secret's value never appears in a message or in `repr(settings)`.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from entrypoints.passwords import check_password, with_password

T = TypeVar("T")

SECRET_NAMES = (
    "OPENAI_API_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "WEBHOOK_SIGNING_SECRET",
    "DATABASE_PASSWORD",
    "CELERY_BROKER_PASSWORD",
)
# A password given apart from its URL (see entrypoints.passwords): name -> URL's name, field.
PASSWORD_NAMES = {
    "DATABASE_PASSWORD": ("DATABASE_URL", "database_url"),
    "CELERY_BROKER_PASSWORD": ("CELERY_BROKER_URL", "celery_broker_url"),
}


class SettingsError(ValueError):
    """A setting has a value the service cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = field(default="sqlite:///./guideline-ingest.sqlite3", repr=False)
    celery_broker_url: str | None = field(default=None, repr=False)
    llm_provider: str = "offline"
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 60.0
    llm_max_attempts: int = 4
    llm_retry_after_max_s: float = 60.0
    llm_backoff_base_s: float = 1.0
    llm_max_output_tokens_summary: int = 1024
    llm_max_output_tokens_checklist: int = 2048
    llm_max_tokens_field: str = "max_completion_tokens"
    worker_concurrency: int = 200
    job_lease_s: float = 60.0
    job_pending_redispatch_s: float = 120.0
    job_pending_redispatch_max_s: float = 1800.0
    outbox_retention_s: float = 86400.0
    max_deliveries: int = 5
    shutdown_grace_s: float = 30.0
    auth_disabled: bool = False
    rate_limit_submit_per_min: int | None = None
    rate_limit_read_per_min: int | None = None
    max_inflight_per_owner: int | None = None
    max_retries_per_job: int = 5
    rate_limit_auth_failures_per_min: int | None = 60
    job_retention_days: int | None = None
    webhook_signing_secret: str | None = field(default=None, repr=False)
    callbacks_allow_http: bool = False
    callbacks_allow_private: bool = False
    webhook_timeout_s: float = 10.0
    webhook_backoff_base_s: float = 5.0
    webhook_max_attempts: int = 8
    callback_interval_s: float = 1.0
    log_format: str = "json"
    log_level: str = "INFO"
    db_pool_size: int = 10
    db_pool_max_overflow: int = 10
    db_pool_timeout_s: float = 5.0
    db_statement_timeout_s: float = 30.0
    db_lock_timeout_s: float = 5.0
    request_timeout_s: float = 8.0
    api_key_cache_s: float = 10.0
    worker_metrics_port: int | None = None
    trusted_proxies: str = "127.0.0.1"
    recovery_interval_s: float = 15.0
    relay_interval_s: float = 2.0
    purge_interval_s: float = 3600.0

    @property
    def embedded(self) -> bool:
        """Jobs run in-process when no broker is configured."""
        return self.celery_broker_url is None

    @property
    def signing_secrets(self) -> list[str]:
        """The callback signing secrets (all sign; several while rotating)."""
        return (self.webhook_signing_secret or "").split()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _read_env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    file_name = env.get(f"{name}_FILE")
    if (value is None or value == "") and file_name and name in SECRET_NAMES:
        try:
            value = Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from exc
    return value if value not in (None, "") else None


def _parse(name: str, raw: str, convert: Callable[[str], T], rule: str) -> T:
    try:
        return convert(raw)
    except ValueError:
        if name in SECRET_NAMES:  # the value may hold a password or a key: never echo it
            raise SettingsError(f"{name}: expected {rule} (value not shown: a secret)") from None
        raise SettingsError(f"{name}: expected {rule}, got {raw!r}") from None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError
    return value


def _limit_or_off(raw: str) -> int | None:
    value = int(raw)
    if value < 0:
        raise ValueError
    return value or None


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError


def _choice(*options: str) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw.lower() not in options:
            raise ValueError
        return raw.lower()

    return convert


def _url(*schemes: str) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if not raw.startswith(tuple(f"{s}:" for s in schemes)):
            raise ValueError
        return raw

    return convert


def _signing_secrets(raw: str) -> str:
    secrets = raw.split()
    for secret in secrets:
        if not secret.startswith("whsec_"):
            raise ValueError
        try:
            if not base64.b64decode(secret.removeprefix("whsec_") + "==", validate=False):
                raise ValueError
        except binascii.Error:
            raise ValueError from None
    if not secrets:
        raise ValueError
    return " ".join(secrets)


_INT = (_positive_int, "a positive integer")
_FLOAT = (_positive_float, "a positive number")
_BOOL = (_bool, "true or false")

# env name -> (field, converter, rule)
_FIELDS: dict[str, tuple[str, Callable[[str], object], str]] = {
    "DATABASE_URL": (
        "database_url",
        _url("sqlite", "postgresql", "postgresql+psycopg", "postgres"),
        "a sqlite:/// or postgresql:// URL",
    ),
    "CELERY_BROKER_URL": (
        "celery_broker_url",
        _url("redis", "rediss"),
        "a redis:// or rediss:// URL",
    ),
    "LLM_PROVIDER": (
        "llm_provider",
        _choice("openai", "offline"),
        "openai or offline",
    ),
    "OPENAI_API_KEY": ("openai_api_key", str, "a key"),
    "OPENAI_BASE_URL": ("openai_base_url", _url("http", "https"), "an http(s):// URL"),
    "OPENAI_MODEL": ("openai_model", str, "a model name"),
    "LLM_TIMEOUT_S": ("llm_timeout_s", *_FLOAT),
    "LLM_MAX_ATTEMPTS": ("llm_max_attempts", *_INT),
    "LLM_RETRY_AFTER_MAX_S": ("llm_retry_after_max_s", *_FLOAT),
    "LLM_BACKOFF_BASE_S": ("llm_backoff_base_s", *_FLOAT),
    "LLM_MAX_OUTPUT_TOKENS_SUMMARY": ("llm_max_output_tokens_summary", *_INT),
    "LLM_MAX_OUTPUT_TOKENS_CHECKLIST": ("llm_max_output_tokens_checklist", *_INT),
    "LLM_MAX_TOKENS_FIELD": (
        "llm_max_tokens_field",
        _choice("max_completion_tokens", "max_tokens"),
        "max_completion_tokens or max_tokens",
    ),
    "WORKER_CONCURRENCY": ("worker_concurrency", *_INT),
    "JOB_LEASE_S": ("job_lease_s", *_FLOAT),
    "JOB_PENDING_REDISPATCH_S": ("job_pending_redispatch_s", *_FLOAT),
    "JOB_PENDING_REDISPATCH_MAX_S": ("job_pending_redispatch_max_s", *_FLOAT),
    "OUTBOX_RETENTION_S": ("outbox_retention_s", *_FLOAT),
    "MAX_DELIVERIES": ("max_deliveries", *_INT),
    "SHUTDOWN_GRACE_S": ("shutdown_grace_s", *_FLOAT),
    "AUTH_DISABLED": ("auth_disabled", *_BOOL),
    "RATE_LIMIT_SUBMIT_PER_MIN": ("rate_limit_submit_per_min", *_INT),
    "RATE_LIMIT_READ_PER_MIN": ("rate_limit_read_per_min", *_INT),
    "MAX_INFLIGHT_PER_OWNER": ("max_inflight_per_owner", *_INT),
    "MAX_RETRIES_PER_JOB": ("max_retries_per_job", *_INT),
    "RATE_LIMIT_AUTH_FAILURES_PER_MIN": (
        "rate_limit_auth_failures_per_min",
        _limit_or_off,
        "a positive integer, or 0 for no limit",
    ),
    "JOB_RETENTION_DAYS": ("job_retention_days", *_INT),
    "WEBHOOK_SIGNING_SECRET": (
        "webhook_signing_secret",
        _signing_secrets,
        "whsec_<base64> secrets separated by spaces",
    ),
    "CALLBACKS_ALLOW_HTTP": ("callbacks_allow_http", *_BOOL),
    "CALLBACKS_ALLOW_PRIVATE": ("callbacks_allow_private", *_BOOL),
    "WEBHOOK_TIMEOUT_S": ("webhook_timeout_s", *_FLOAT),
    "WEBHOOK_BACKOFF_BASE_S": ("webhook_backoff_base_s", *_FLOAT),
    "WEBHOOK_MAX_ATTEMPTS": ("webhook_max_attempts", *_INT),
    "CALLBACK_INTERVAL_S": ("callback_interval_s", *_FLOAT),
    "LOG_FORMAT": ("log_format", _choice("console", "json"), "console or json"),
    "LOG_LEVEL": (
        "log_level",
        _choice("debug", "info", "warning", "error"),
        "DEBUG, INFO, WARNING or ERROR",
    ),
    "DB_POOL_SIZE": ("db_pool_size", *_INT),
    "DB_POOL_TIMEOUT_S": ("db_pool_timeout_s", *_FLOAT),
    "DB_STATEMENT_TIMEOUT_S": (
        "db_statement_timeout_s",
        _non_negative_float,
        "a number of seconds, 0 or more (0: none)",
    ),
    "DB_LOCK_TIMEOUT_S": (
        "db_lock_timeout_s",
        _non_negative_float,
        "a number of seconds, 0 or more (0: none)",
    ),
    "REQUEST_TIMEOUT_S": ("request_timeout_s", *_FLOAT),
    "DB_POOL_MAX_OVERFLOW": ("db_pool_max_overflow", _non_negative_int, "an integer, 0 or more"),
    "WORKER_METRICS_PORT": ("worker_metrics_port", *_INT),
    "API_KEY_CACHE_S": ("api_key_cache_s", _non_negative_float, "a number of seconds, 0 or more"),
    "TRUSTED_PROXIES": ("trusted_proxies", str, "addresses separated by commas, or *"),
    "RECOVERY_INTERVAL_S": ("recovery_interval_s", *_FLOAT),
    "RELAY_INTERVAL_S": ("relay_interval_s", *_FLOAT),
    "PURGE_INTERVAL_S": ("purge_interval_s", *_FLOAT),
}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every setting; raise SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for name, (attr, convert, rule) in _FIELDS.items():
        raw = _read_env(env, name)
        if raw is not None:
            values[attr] = _parse(name, raw, convert, rule)
    _apply_passwords(env, values)
    if "llm_provider" not in values:
        values["llm_provider"] = "openai" if values.get("openai_api_key") else "offline"
    keyless = not values.get("openai_api_key") and not values.get("openai_base_url")
    if values["llm_provider"] == "openai" and keyless:
        raise SettingsError("LLM_PROVIDER: openai needs OPENAI_API_KEY (or an OPENAI_BASE_URL)")
    if "log_format" not in values:
        values["log_format"] = "console" if sys.stderr.isatty() else "json"
    if "log_level" in values:
        values["log_level"] = str(values["log_level"]).upper()
    return Settings(**values)  # type: ignore[arg-type]


def _apply_passwords(env: Mapping[str, str], values: dict[str, object]) -> None:
    """Put DATABASE_PASSWORD / CELERY_BROKER_PASSWORD into their URLs; in production
    mode, refuse an empty or placeholder password (entrypoints.passwords)."""
    given: set[str] = set()
    for name, (url_name, attr) in PASSWORD_NAMES.items():
        password = _read_env(env, name)
        if password is None:
            continue
        url = values.get(attr)
        if not isinstance(url, str) or url.startswith("sqlite"):
            raise SettingsError(f"{name}: needs a {url_name} (without a password) to go into")
        try:
            values[attr] = with_password(url, password, url_name, name)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        given.add(name)
    if values.get("celery_broker_url") is None:
        return
    for name, (url_name, attr) in PASSWORD_NAMES.items():
        url = values.get(attr)
        if isinstance(url, str):
            try:
                check_password(url, name if name in given else url_name)
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
