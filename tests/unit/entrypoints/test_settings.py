"""Settings: defaults, parsing, the <NAME>_FILE secrets, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from entrypoints.settings import Settings, SettingsError, load_settings


def test_defaults_are_the_embedded_mode() -> None:
    settings = load_settings({"LOG_FORMAT": "json"})
    assert settings == Settings(log_format="json")
    assert settings.embedded
    assert settings.is_sqlite
    assert settings.llm_provider == "offline"


def test_an_openai_key_selects_the_openai_provider() -> None:
    assert load_settings({"OPENAI_API_KEY": "sk-test"}).llm_provider == "openai"
    forced = load_settings({"OPENAI_API_KEY": "sk-test", "LLM_PROVIDER": "offline"})
    assert forced.llm_provider == "offline"


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://u:p@db/x",
            "CELERY_BROKER_URL": "redis://:pw@redis:6379/0",
            "LLM_TIMEOUT_S": "2.5",
            "WORKER_CONCURRENCY": "50",
            "AUTH_DISABLED": "TRUE",
            "JOB_RETENTION_DAYS": "30",
            "LOG_LEVEL": "debug",
            "RATE_LIMIT_SUBMIT_PER_MIN": "",
        }
    )
    assert not settings.embedded
    assert not settings.is_sqlite
    assert settings.llm_timeout_s == 2.5
    assert settings.worker_concurrency == 50
    assert settings.auth_disabled is True
    assert settings.job_retention_days == 30
    assert settings.log_level == "DEBUG"
    assert settings.rate_limit_submit_per_min is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://x"),
        ("CELERY_BROKER_URL", "amqp://guest@localhost//"),
        ("LLM_TIMEOUT_S", "soon"),
        ("LLM_MAX_ATTEMPTS", "0"),
        ("WORKER_CONCURRENCY", "-3"),
        ("AUTH_DISABLED", "maybe"),
        ("LLM_PROVIDER", "anthropic"),
        ("LLM_PROVIDER", "fake"),  # the scripted fake is for tests only, wired by them
        ("LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}"):
        load_settings({name: value})


def test_openai_without_a_key_or_server_is_refused() -> None:
    with pytest.raises(SettingsError, match="LLM_PROVIDER"):
        load_settings({"LLM_PROVIDER": "openai"})


def test_a_secret_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://u:secret@db/x\n")
    settings = load_settings({"DATABASE_URL_FILE": str(secret)})
    assert settings.database_url == "postgresql://u:secret@db/x"


def test_an_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^OPENAI_API_KEY_FILE"):
        load_settings({"OPENAI_API_KEY_FILE": str(tmp_path / "missing")})


def test_secrets_do_not_show_in_repr() -> None:
    settings = load_settings({"OPENAI_API_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in repr(settings)


def test_pool_overflow_is_a_setting() -> None:
    assert load_settings({}).db_pool_max_overflow == 10
    assert load_settings({"DB_POOL_MAX_OVERFLOW": "0"}).db_pool_max_overflow == 0
    with pytest.raises(SettingsError, match=r"^DB_POOL_MAX_OVERFLOW"):
        load_settings({"DB_POOL_MAX_OVERFLOW": "-1"})


# --- passwords apart from their URLs, and weak ones refused in production mode --

STRONG = "Zq8#k/2@x%y:w"  # every URL-special character, so quoting is exercised
PRODUCTION = {
    "DATABASE_URL": "postgresql://guideline_app@postgres:5432/guideline",
    "CELERY_BROKER_URL": "redis://redis:6379/0",
}


def test_passwords_from_files_go_into_the_urls(tmp_path: Path) -> None:
    (tmp_path / "db").write_text(STRONG + "\n")
    (tmp_path / "redis").write_text("r3dis-" + STRONG)
    settings = load_settings(
        PRODUCTION
        | {
            "DATABASE_PASSWORD_FILE": str(tmp_path / "db"),
            "CELERY_BROKER_PASSWORD_FILE": str(tmp_path / "redis"),
        }
    )

    db = urlsplit(settings.database_url)
    broker = urlsplit(settings.celery_broker_url or "")
    assert (db.username, unquote(db.password or "")) == ("guideline_app", STRONG)
    assert (db.hostname, db.port, db.path) == ("postgres", 5432, "/guideline")
    assert unquote(broker.password or "") == "r3dis-" + STRONG
    assert (broker.hostname, broker.port, broker.path) == ("redis", 6379, "/0")


def test_a_password_for_a_url_that_has_one_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^DATABASE_PASSWORD: DATABASE_URL has a password"):
        load_settings(
            {"DATABASE_URL": "postgresql://u:other@db/x", "DATABASE_PASSWORD": "a-real-one-9"}
        )


def test_a_password_without_its_url_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^CELERY_BROKER_PASSWORD"):
        load_settings({"CELERY_BROKER_PASSWORD": "a-real-one-9"})


@pytest.mark.parametrize("placeholder", ["change-me", "CHANGE-ME", "password", "postgres", ""])
@pytest.mark.parametrize("variable", ["DATABASE_PASSWORD", "CELERY_BROKER_PASSWORD"])
def test_production_mode_refuses_empty_or_placeholder_passwords(
    variable: str, placeholder: str
) -> None:
    good = {"DATABASE_PASSWORD": "db-" + STRONG, "CELERY_BROKER_PASSWORD": "mq-" + STRONG}
    env = PRODUCTION | good | {variable: placeholder}
    load_settings(PRODUCTION | good)  # the strong pair passes

    url_name = "DATABASE_URL" if variable == "DATABASE_PASSWORD" else "CELERY_BROKER_URL"
    # An empty variable means unset: the URL (with no password) is what is refused.
    named = url_name if placeholder == "" else variable
    with pytest.raises(SettingsError, match=f"^{named}: the password is") as refused:
        load_settings(env)
    if placeholder:
        # One fixed message whatever the value: nothing of the secret shows.
        with pytest.raises(SettingsError) as other:
            load_settings(env | {variable: "changeme"})
        assert str(refused.value) == str(other.value)


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("DATABASE_URL", "postgresql://guideline:change-me@postgres:5432/guideline"),
        ("DATABASE_URL", "postgresql://guideline:guideline@postgres:5432/guideline"),
        ("DATABASE_URL", "postgresql://guideline@db.example.org/guideline"),
        ("CELERY_BROKER_URL", "redis://:change-me@redis:6379/0"),
        ("CELERY_BROKER_URL", "rediss://:@redis.example.org:6380/0"),
    ],
)
def test_weak_passwords_in_the_urls_are_refused_without_echoing_them(name: str, url: str) -> None:
    env = {
        "DATABASE_URL": "postgresql://guideline:db-long-enough@pg/guideline",
        "CELERY_BROKER_URL": "redis://:mq-long-enough@redis:6379/0",
    } | {name: url}
    with pytest.raises(SettingsError, match=f"^{name}: the password is") as refused:
        load_settings(env)
    assert url not in str(refused.value)
    assert "change-me" not in str(refused.value)


def test_embedded_mode_and_local_servers_may_go_without_passwords() -> None:
    # Embedded mode (no broker) does not check; SQLite has no password.
    load_settings({"DATABASE_URL": "postgresql://guideline:change-me@db/x"})
    load_settings({"CELERY_BROKER_URL": "redis://:s3cure-enough@redis:6379/0"})
    # A server on this host (loopback, Unix socket) is left to its local authentication.
    load_settings(
        {
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x",
            "CELERY_BROKER_URL": "redis://localhost:6379/7",
        }
    )
    load_settings(
        {
            "DATABASE_URL": "postgresql://postgres@/x?host=/var/run/postgresql",
            "CELERY_BROKER_URL": "redis://[::1]:6379/0",
        }
    )
    # ... but never with a placeholder password.
    with pytest.raises(SettingsError, match=r"^CELERY_BROKER_URL"):
        load_settings(
            {
                "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x",
                "CELERY_BROKER_URL": "redis://:password@127.0.0.1:6379/7",
            }
        )


def test_output_token_caps_default_per_step_and_are_read() -> None:
    defaults = load_settings({})
    assert defaults.llm_max_output_tokens_summary == 1024
    assert defaults.llm_max_output_tokens_checklist == 2048
    assert defaults.llm_max_tokens_field == "max_completion_tokens"
    settings = load_settings(
        {
            "LLM_MAX_OUTPUT_TOKENS_SUMMARY": "500",
            "LLM_MAX_OUTPUT_TOKENS_CHECKLIST": "700",
            "LLM_MAX_TOKENS_FIELD": "max_tokens",
        }
    )
    assert settings.llm_max_output_tokens_summary == 500
    assert settings.llm_max_output_tokens_checklist == 700
    assert settings.llm_max_tokens_field == "max_tokens"
    with pytest.raises(SettingsError, match="LLM_MAX_TOKENS_FIELD"):
        load_settings({"LLM_MAX_TOKENS_FIELD": "tokens"})
    with pytest.raises(SettingsError, match="LLM_MAX_OUTPUT_TOKENS_SUMMARY"):
        load_settings({"LLM_MAX_OUTPUT_TOKENS_SUMMARY": "0"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "postgresql+asyncpg://u:Pa55-SECRET@db/x"),
        ("DATABASE_URL", "mysql://u:Pa55-SECRET@db/x"),
        ("CELERY_BROKER_URL", "amqp://:Pa55-SECRET@rabbit:5672//"),
    ],
)
def test_a_bad_secret_setting_never_echoes_its_value(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}: expected ")
    assert "SECRET" not in message
    assert "Pa55" not in message


def test_a_bad_ordinary_setting_still_shows_its_value() -> None:
    with pytest.raises(SettingsError, match="got 'lots'"):
        load_settings({"WORKER_CONCURRENCY": "lots"})


def test_repr_of_settings_shows_no_secret() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://u:db-SECRET@db/x",
            "CELERY_BROKER_URL": "redis://:broker-SECRET@redis:6379/0",
            "OPENAI_API_KEY": "sk-SECRET",
            "WEBHOOK_SIGNING_SECRET": "whsec_SECRETSECRETSECRETSECRETSECRETSECRETSECRET",
        }
    )
    for text in (repr(settings), str(settings), f"{settings}"):
        assert "SECRET" not in text
        assert "openai_model=" in text  # the rest is still there


def test_signing_secrets_must_be_whsec_base64_and_may_be_several() -> None:
    first, second = "whsec_" + "A" * 44, "whsec_" + "B" * 44
    assert load_settings({"WEBHOOK_SIGNING_SECRET": f"{first}  {second}"}).signing_secrets == [
        first,
        second,
    ]
    with pytest.raises(SettingsError, match=r"^WEBHOOK_SIGNING_SECRET"):
        load_settings({"WEBHOOK_SIGNING_SECRET": "not-a-whsec"})


def test_time_limits_of_requests_and_sessions() -> None:
    defaults = load_settings({})
    assert (defaults.request_timeout_s, defaults.db_statement_timeout_s) == (8.0, 30.0)
    assert defaults.db_lock_timeout_s == 5.0
    settings = load_settings(
        {"REQUEST_TIMEOUT_S": "2.5", "DB_STATEMENT_TIMEOUT_S": "0", "DB_LOCK_TIMEOUT_S": "1"}
    )
    assert settings.request_timeout_s == 2.5
    assert settings.db_statement_timeout_s == 0.0  # off
    assert settings.db_lock_timeout_s == 1.0
    for name, value in [("REQUEST_TIMEOUT_S", "0"), ("DB_LOCK_TIMEOUT_S", "-1")]:
        with pytest.raises(SettingsError, match=f"^{name}"):
            load_settings({name: value})


def test_failed_authentications_are_limited_by_default() -> None:
    name = "RATE_LIMIT_AUTH_FAILURES_PER_MIN"
    assert load_settings({}).rate_limit_auth_failures_per_min == 60
    assert load_settings({name: "5"}).rate_limit_auth_failures_per_min == 5
    assert load_settings({name: "0"}).rate_limit_auth_failures_per_min is None  # off
    with pytest.raises(SettingsError, match=rf"^{name}"):
        load_settings({name: "-1"})


def test_redispatch_backoff_and_outbox_retention() -> None:
    defaults = load_settings({})
    assert (defaults.job_pending_redispatch_max_s, defaults.outbox_retention_s) == (1800, 86400)
    settings = load_settings({"JOB_PENDING_REDISPATCH_MAX_S": "600", "OUTBOX_RETENTION_S": "60"})
    assert (settings.job_pending_redispatch_max_s, settings.outbox_retention_s) == (600, 60)
