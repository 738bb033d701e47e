"""The compose stack's database roles, on the local PostgreSQL.

docker/postgres-init.sh (with docker/postgres-roles.sql) runs as the owner
before the migrations, as the postgres image runs it on a new volume; the owner
migrates; then the API, a worker and `keys create` run as the application role,
which reaches PostgreSQL through DATABASE_URL without a password plus
DATABASE_PASSWORD_FILE, as in compose.yaml. That role can read and write the
tables and do nothing else.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from tests.integration.celery.celery_stack import GUIDELINE, Stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def app_role(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh application role made by docker/postgres-init.sh in `pg_url`'s database."""
    role = f"gi_app_{uuid.uuid4().hex[:12]}"
    password_file = tmp_path / "app_db_password"
    password_file.write_text(secrets.token_hex(24) + "\n")
    server, database = pg_url.removeprefix("postgresql://").rsplit("/", 1)
    user, host_port = server.split("@")
    host, port = host_port.split(":")
    env = os.environ | {
        "POSTGRES_USER": user,
        "POSTGRES_DB": database,
        "PGHOST": host,
        "PGPORT": port,
        "APP_DB_USER": role,
        "APP_DB_PASSWORD_FILE": str(password_file),
        "ROLES_SQL": str(ROOT / "docker" / "postgres-roles.sql"),
    }
    script = ["bash", str(ROOT / "docker" / "postgres-init.sh")]
    for _ in range(2):  # idempotent: a second run changes nothing and does not fail
        done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert password_file.read_text().strip() not in done.stdout + done.stderr
    try:
        yield role, password_file
    finally:
        with psycopg.connect(pg_url, autocommit=True) as owner:
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            owner.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_api_and_worker_run_as_a_role_that_only_reads_and_writes_tables(
    pg_url: str, app_role: tuple[str, Path], make_stack: Callable[..., Stack]
) -> None:
    role, password_file = app_role
    owner_stack = make_stack()  # migrates as the owner, after the roles script
    app_url = pg_url.replace("postgres@", f"{role}@", 1)
    app_stack = Stack(
        log_dir=owner_stack.log_dir,
        database_url=app_url,
        broker_url=owner_stack.broker_url,
        llm_base_url=owner_stack.llm_base_url,
        extra_env=owner_stack.extra_env | {"DATABASE_PASSWORD_FILE": str(password_file)},
    )
    try:
        app_stack.api_key = app_stack.cli("keys", "create", "tester").strip().splitlines()[-1]
        app_stack.start_api()
        app_stack.start_worker()
        with app_stack.client() as client:
            submitted = client.post("/jobs", json={"input_text": GUIDELINE})
            assert submitted.status_code == 202, submitted.text
            location = submitted.headers["location"]
            deadline = time.monotonic() + 30
            while (job := client.get(location).json())["status"] != "completed":
                assert job["status"] in {"pending", "processing"}, job
                assert time.monotonic() < deadline, job
                time.sleep(0.1)
            assert client.delete(location).status_code == 204
            assert httpx.get(f"{app_stack.api_url}/health/ready", timeout=10).status_code == 200
    finally:
        app_stack.close()

    with psycopg.connect(app_url, autocommit=True) as app:
        assert app.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False,)
        tables = [
            name
            for (name,) in app.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        assert "jobs" in tables
        for table in tables:  # every table of the migrations, through the default privileges
            app.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        for statement in (
            "CREATE TABLE intruder (x int)",
            "DROP TABLE jobs",
            "ALTER TABLE jobs ADD COLUMN intruder int",
            "TRUNCATE jobs",
            "CREATE INDEX intruder ON jobs (status)",
            "CREATE ROLE intruder",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
