"""docker/nginx.conf in a real nginx in front of the real API in production mode.

One nginx (HTTP and HTTPS) and one API process (Celery mode: PostgreSQL, the
local Redis, the OpenAI stub) serve the whole module; see nginx_runner for what
of the config is rewritten to run here (only the upstream `resolve` flag, which
nginx 1.22 lacks, and the host names and ports). The rate-limit burst runs last.
"""

from __future__ import annotations

import inspect
import json
import re
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from psycopg import sql
from tests.integration.celery.celery_stack import GUIDELINE, Stack, StubControl, closing_all
from tests.integration.proxy.nginx_runner import NGINX_CONF, Nginx, start_nginx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[3]
REDIS_DB = 6  # the Celery tests use 7..15
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
NOT_PUBLIC = ("/metrics", "/health/ready")


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str
) -> Iterator[tuple[Stack, Nginx]]:
    log_dir = tmp_path_factory.mktemp("proxy")
    name = f"gi_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    stub = StubControl(log_dir)
    stack = Stack(
        log_dir=log_dir,
        database_url=pg_admin_url.rsplit("/", 1)[0] + f"/{name}",
        broker_url=broker,
        llm_base_url=stub.url,
        # The API believes nginx's X-Forwarded-* (compose sets "*": only nginx reaches it).
        extra_env={"TRUSTED_PROXIES": "127.0.0.1"},
    )
    nginx: Nginx | None = None
    try:
        stack.prepare()
        stack.start_api()
        nginx = start_nginx(log_dir / "nginx", int(stack.api_url.rsplit(":", 1)[1]))
        with closing_all(stub, stack, nginx):
            yield stack, nginx
    finally:
        if nginx is None:
            with closing_all(stub, stack):
                pass
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def through_nginx(deployment: tuple[Stack, Nginx], **kwargs: Any) -> httpx.Client:
    stack, nginx = deployment
    return httpx.Client(
        base_url=nginx.url,
        headers={"Authorization": f"Bearer {stack.api_key}"},
        timeout=15,
        **kwargs,
    )


def raw_get(base_url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` byte for byte (httpx would normalise `/./x` and `//x`)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def submit(client: httpx.Client) -> httpx.Response:
    return client.post("/jobs", json={"input_text": GUIDELINE})


def api_routes() -> list[tuple[str, str]]:
    """Every (method, path template) the API serves, from the app itself."""
    from litestar.routes import HTTPRoute

    from entrypoints.asgi import create_app
    from entrypoints.settings import load_settings

    app = create_app(load_settings({"DATABASE_URL": "sqlite:///:memory:", "LOG_LEVEL": "ERROR"}))
    return sorted(
        (method, route.path_format)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method in route.methods
        if method not in {"OPTIONS", "HEAD"}
    )


def test_every_public_route_reaches_the_api_and_internal_ones_do_not(
    deployment: tuple[Stack, Nginx],
) -> None:
    stack, _ = deployment
    with through_nginx(deployment) as client, stack.client() as direct:
        submitted = submit(client)
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()["event_id"]
        values = {"event_id": job, "file_path": "swagger-ui-bundle.js", "path": "openapi.json"}
        seen = set()
        for method, template in api_routes():
            path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
            marker = uuid.uuid4().hex
            if template.endswith("/events"):  # a stream that stays open: its head only
                with client.stream(method, path, headers={"X-Request-ID": marker}) as response:
                    pass
            else:
                response = client.request(method, path, headers={"X-Request-ID": marker})
            if template in NOT_PUBLIC:
                assert response.status_code == 404, (method, path)
                assert "x-request-id" not in response.headers, f"{path} reached the API"
                assert response.headers["content-type"] == "application/problem+json"
                continue
            # The API echoes the request id nginx forwarded: the answer is the API's.
            assert response.headers.get("x-request-id") == marker, (method, path)
            assert response.status_code < 500, (method, path, response.text[:300])
            if method == "GET" and not template.endswith("/events"):
                assert response.status_code == direct.get(path).status_code, path
            seen.add(template)
        assert {"/jobs", "/jobs/{event_id}", "/openapi.json", "/health/live"} <= seen


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/metrics/",
        "//metrics",
        "///metrics//",
        "/%6Detrics",
        "/%6detrics/",
        "/metrics?x=1",
        "/metrics/?name[]=x",
        "/./metrics",
        "/jobs/../metrics",
        "/jobs/%2e%2e/metrics",
        "/METRICS",
        "/Metrics/",
        "/metrics%2F",
        "/%2Fmetrics",
        "/health/ready",
        "/health/ready/",
        "//health//ready",
        "/health/%72eady",
        "/health/ready?x",
    ],
)
def test_metrics_and_readiness_are_not_reachable_under_any_spelling(
    deployment: tuple[Stack, Nginx], path: str
) -> None:
    _, nginx = deployment
    status, headers, body = raw_get(nginx.url, path)

    assert status in {400, 404}, (path, status)
    assert b"# TYPE" not in body
    assert b"# HELP" not in body
    assert b'"database"' not in body
    assert "x-request-id" not in headers  # nginx answered; the API never saw it


def test_the_spellings_would_reach_the_api_without_nginx(deployment: tuple[Stack, Nginx]) -> None:
    """The spellings above are real bypasses, not strawmen: the API serves them."""
    stack, _ = deployment
    for path in ("/metrics", "/metrics/", "/%6Detrics", "/metrics?x=1"):
        status, _, body = raw_get(stack.api_url, path)
        assert status == 200, path
        assert b"# TYPE" in body, path
    assert raw_get(stack.api_url, "/health/ready/")[0] == 200


def test_an_event_stream_passes_through_unbuffered(deployment: tuple[Stack, Nginx]) -> None:
    """The job at once, then its change the moment it happens, then the end."""
    with through_nginx(deployment) as client, through_nginx(deployment) as other:
        submitted = submit(client)
        location = submitted.headers["location"]
        with client.stream("GET", f"{location}/events", timeout=30) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["x-content-type-options"] == "nosniff"
            lines = stream.iter_lines()
            first = _next_event(lines)
            assert first["status"] == "pending"
            cancelled_at = time.monotonic()
            assert other.post(f"{location}/cancel").status_code == 200
            changed = _next_event(lines)
            arrived_after = time.monotonic() - cancelled_at
            rest = list(lines)  # the stream ends after the finished state

    assert changed["status"] == "cancelled"
    assert arrived_after < 3, arrived_after
    assert not [line for line in rest if line.startswith("data:")]


def _next_event(lines: Iterator[str]) -> dict[str, Any]:
    for line in lines:
        if line.startswith("data:"):
            event: dict[str, Any] = json.loads(line.removeprefix("data:"))
            return event
    raise AssertionError("the stream ended before an event")


def test_a_body_over_4_mib_is_refused_with_problem_details(
    deployment: tuple[Stack, Nginx],
) -> None:
    too_big = json.dumps({"input_text": "a" * (4 * 1024 * 1024 + 10)}).encode()
    with through_nginx(deployment) as client:
        sized = client.post("/jobs", content=too_big, headers={"Content-Type": "application/json"})
        streamed = client.post(
            "/jobs",
            content=iter([too_big[i : i + 65536] for i in range(0, len(too_big), 65536)]),
            headers={"Content-Type": "application/json"},
        )

    for response in (sized, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 413
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value


def test_uvicorn_keeps_idle_connections_longer_than_nginx() -> None:
    """nginx must drop an idle upstream connection before uvicorn may close it."""
    upstream = NGINX_CONF.read_text().split("upstream api {", 1)[1].split("}", 1)[0]
    nginx_s = int(re.search(r"keepalive_timeout\s+(\d+)s;", upstream).group(1))  # type: ignore[union-attr]
    uvicorn_s = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    # `guideline-ingest serve` keeps uvicorn's default.
    assert "timeout_keep_alive" not in (ROOT / "src" / "entrypoints" / "cli.py").read_text()

    assert nginx_s < uvicorn_s


def open_connections_to(port: int) -> int:
    """ESTABLISHED TCP connections from this host to `port` (nginx's to the API)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def test_posts_spaced_past_uvicorns_keepalive_all_succeed(
    deployment: tuple[Stack, Nginx],
) -> None:
    """5 POST /jobs 6 s apart, each after nginx's idle upstream connection has aged
    past uvicorn's 5 s. nginx usually notices uvicorn's close in time, so the POSTs
    alone rarely fail; what prevents the race is that nginx closes first, which the
    gaps check: the idle connection is gone before uvicorn's 5 s are up."""
    stack, _ = deployment
    api_port = int(stack.api_url.rsplit(":", 1)[1])
    uvicorn_s = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    statuses = []
    closed_after: list[float] = []
    with through_nginx(deployment) as client:
        for index in range(5):
            statuses.append(submit(client).status_code)
            answered = time.monotonic()
            assert open_connections_to(api_port) >= 1  # kept alive for the next request
            while open_connections_to(api_port) and time.monotonic() - answered < uvicorn_s:
                time.sleep(0.05)
            closed_after.append(time.monotonic() - answered)
            if index < 4:
                time.sleep(max(0.0, 6 - (time.monotonic() - answered)))

    assert statuses == [202] * 5
    # Closed by nginx (its keepalive_timeout, 4 s) before uvicorn would (5 s).
    assert all(seconds < uvicorn_s - 0.1 for seconds in closed_after), closed_after


def test_security_headers_on_every_kind_of_answer(deployment: tuple[Stack, Nginx]) -> None:
    with through_nginx(deployment) as client:
        answers = {
            "api 200": client.get("/health/live"),
            "api 202": submit(client),
            "api 401": client.get("/jobs", headers={"Authorization": "Bearer nope"}),
            "api 404": client.get("/jobs/00000000-0000-0000-0000-000000000000"),
            "nginx 404": client.get("/metrics"),
            "docs page": client.get("/swagger"),
        }
    for what, response in answers.items():
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get_list(name) == [value], (what, name)
        # Plain HTTP: no HSTS (it would be ignored, and pins nothing).
        assert "strict-transport-security" not in response.headers, what


def test_https_serves_the_api_with_hsts(deployment: tuple[Stack, Nginx]) -> None:
    stack, nginx = deployment
    assert nginx.tls_url is not None
    assert nginx.ca_file is not None
    context = ssl.create_default_context(cafile=str(nginx.ca_file))
    with httpx.Client(
        base_url=nginx.tls_url,
        verify=context,
        headers={"Authorization": f"Bearer {stack.api_key}"},
        timeout=15,
    ) as client:
        submitted = submit(client)
        read = client.get(submitted.headers["location"])
        metrics = client.get("/metrics/")

    assert submitted.status_code == 202
    assert read.status_code == 200
    assert metrics.status_code == 404
    for response in (submitted, read, metrics):
        hsts = response.headers["strict-transport-security"]
        assert re.fullmatch(r"max-age=(\d+); includeSubDomains", hsts)
        assert int(hsts.split("=")[1].split(";")[0]) >= 31536000
        assert response.headers["x-content-type-options"] == "nosniff"


def test_connections_per_address_are_limited(deployment: tuple[Stack, Nginx]) -> None:
    """20 uploads held open (bodies still coming) use up the address's connections."""
    stack, nginx = deployment
    host, port = nginx.url.removeprefix("http://").split(":")
    head = (
        "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {stack.api_key}\r\nContent-Length: 1000\r\n\r\n"
        '{"input_text": "'
    ).encode()
    held: list[socket.socket] = []
    try:
        for _ in range(20):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(head)
            held.append(sock)
        time.sleep(1.0)  # every upload has reached the API, which waits for the rest
        statuses = []
        for _ in range(3):
            status, headers, body = raw_get(nginx.url, "/health/live")
            statuses.append(status)
        assert statuses == [429, 429, 429]
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["status"] == 429
    finally:
        for sock in held:
            sock.close()
    # Closed uploads free their slots.
    deadline = time.monotonic() + 10
    while raw_get(nginx.url, "/health/live")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_the_config_holds_the_documented_numbers() -> None:
    """What README's Production section says of nginx.conf, beyond the live checks."""
    conf = NGINX_CONF.read_text()
    for directive in (
        "limit_req_zone $binary_remote_addr zone=per_client:10m rate=20r/s;",
        "limit_req zone=per_client burst=40 nodelay;",
        "limit_conn per_client_conn 20;",
        # Bodies streamed to the API, answers in memory: nothing spooled to the tmpfs.
        "proxy_request_buffering off;",
        "proxy_max_temp_file_size 0;",
        "client_max_body_size 4m;",
    ):
        assert directive in conf, directive
    events = conf.split("location ~ ^/jobs/[^/]+/events/?$ {", 1)[1].split("}", 1)[0]
    assert "proxy_buffering off;" in events
    assert int(re.search(r"proxy_read_timeout (\d+)s;", events).group(1)) > 60  # type: ignore[union-attr]
    tls = (ROOT / "docker" / "nginx-tls.conf").read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls


def test_a_burst_from_one_address_is_limited(deployment: tuple[Stack, Nginx]) -> None:
    """Runs last: it spends the address's burst allowance."""
    statuses: list[int] = []
    limited: httpx.Response | None = None
    with through_nginx(deployment) as client:
        for _ in range(150):
            response = client.get("/health/live")
            statuses.append(response.status_code)
            if response.status_code == 429 and limited is None:
                limited = response

    assert statuses[:20] == [200] * 20  # the burst allowance passes
    assert statuses.count(429) > 30, statuses
    assert set(statuses) <= {200, 429}
    assert limited is not None
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["status"] == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-content-type-options"] == "nosniff"
    assert "x-request-id" not in limited.headers  # refused before the API
