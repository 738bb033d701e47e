"""One shutdown call closes what the process opened, newest first, whatever fails."""

from __future__ import annotations

from entrypoints.container import Container, build_container, shutdown
from entrypoints.resources import Resources
from entrypoints.settings import Settings


async def test_close_all_closes_in_reverse_order_and_survives_a_failure() -> None:
    closed: list[str] = []
    resources = Resources()

    async def close_engine() -> None:
        closed.append("engine")

    def close_pool() -> None:
        closed.append("pool")
        raise RuntimeError("stuck thread")

    resources.opened("engine", object(), close_engine)
    resources.opened("pool", object(), close_pool)
    resources.opened("client", object(), lambda: closed.append("client"))

    await resources.close_all()

    assert closed == ["client", "pool", "engine"]
    assert resources.names == []


def _production(tmp: str) -> Container:
    return build_container(
        Settings(
            database_url=f"sqlite:///{tmp}/r.sqlite3",
            celery_broker_url="redis://127.0.0.1:6379/15",
            llm_provider="openai",
            openai_api_key="sk-test",
        )
    )


async def test_the_container_registers_what_it_opens_and_one_call_closes_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    container = _production(str(tmp_path))
    container.submit_job()  # engine, then the dispatcher's Redis client
    container.llm()
    container.rate_limiter()
    resources = container.resources()
    assert resources.names == [
        "database engine",
        "change feed Redis client",
        "revocation feed Redis clients",
        "broker publisher",
        "outbox relay",
        "LLM client",
        "rate-limit Redis client",
    ]
    await shutdown(container)
    assert resources.names == []


def test_one_celery_app_per_container_shared_by_the_dispatcher(tmp_path) -> None:  # type: ignore[no-untyped-def]
    container = _production(str(tmp_path))
    app = container.celery_app()
    dispatcher = container.dispatcher()
    assert dispatcher._app is app  # the dispatcher publishes through the process's one app
    assert container.celery_app() is app


def test_production_api_processes_keep_a_peeked_count_for_a_second(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # README (Security): a block made by another API process shows within a second.
    limiter = _production(str(tmp_path)).rate_limiter()
    assert limiter._peek_cache_s == 1.0
