"""The docs pages (/swagger, /redoc) load everything from the service itself.

Needs the vendor bundles: `make install` (scripts/fetch-docs-assets.sh) fetches them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.testing import AsyncTestClient

from adapters.http.docs import VENDOR_DIR, docs_router

PAGES = ("/swagger", "/redoc")
REQUIRED_ASSETS = (
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "favicon-32x32.png",
    "redoc.standalone.js",
)


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return request.app.openapi_schema.to_schema()


@get("/ping", sync_to_thread=False)
def ping() -> str:
    return "pong"


def make_app(vendor_dir: Path = VENDOR_DIR) -> Litestar:
    # The schema lives under its own path: OpenAPIConfig(path="/") would add a
    # catch-all route that shadows the app's own routes.
    return Litestar(
        route_handlers=[docs_router(vendor_dir=vendor_dir), openapi_json, ping],
        openapi_config=OpenAPIConfig(
            title="Guideline Ingest",
            version="0.1.0",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
    )


class _References(HTMLParser):
    """Collects every URL a page makes the browser load or link to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in {"src", "href", "spec-url"}:
                self.urls.append(value)


def references(page: str) -> list[str]:
    parser = _References()
    parser.feed(page)
    return parser.urls


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    missing = [name for name in REQUIRED_ASSETS if not (VENDOR_DIR / name).is_file()]
    assert not missing, f"docs assets missing: {missing}; run `make install`"
    async with AsyncTestClient(app=make_app()) as client:
        yield client


@pytest.mark.parametrize("path", PAGES)
async def test_page_is_html_with_no_external_url(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "http://" not in response.text
    assert "https://" not in response.text
    assert "//" not in "".join(references(response.text))  # no protocol-relative URL either


@pytest.mark.parametrize("path", PAGES)
async def test_page_policy_allows_this_service_only(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    policy = (await client.get(path)).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))

    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"  # blocks Redoc's CDN-hosted footer logo
    assert directives["connect-src"] == "'self'"
    assert "http" not in policy
    assert "unsafe-eval" not in policy
    assert "'unsafe-inline'" not in directives["script-src"]


@pytest.mark.parametrize("path", PAGES)
async def test_every_reference_is_served_locally(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    page = (await client.get(path)).text
    urls = references(page)

    assert any(url.endswith(".js") for url in urls)
    assert "/openapi.json" in urls or "/openapi.json" in page
    for url in urls:
        assert url.startswith("/"), url
        response = await client.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 100, url


async def test_assets_have_the_right_types(client: AsyncTestClient[Litestar]) -> None:
    js = await client.get("/docs-assets/swagger-ui-bundle.js")
    css = await client.get("/docs-assets/swagger-ui.css")
    redoc = await client.get("/docs-assets/redoc.standalone.js")

    assert "javascript" in js.headers["content-type"]
    assert css.headers["content-type"].startswith("text/css")
    assert "javascript" in redoc.headers["content-type"]
    assert "max-age" in js.headers["cache-control"]


async def test_favicon_is_served(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/favicon.ico")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


async def test_openapi_document_leaves_the_docs_routes_out(
    client: AsyncTestClient[Litestar],
) -> None:
    document = (await client.get("/openapi.json")).json()

    assert "/ping" in document["paths"]
    assert not [p for p in document["paths"] if p != "/ping"]
    assert (await client.get("/ping")).text == "pong"


async def test_missing_assets_answer_503_saying_how_to_fetch_them(tmp_path: Path) -> None:
    async with AsyncTestClient(app=make_app(vendor_dir=tmp_path)) as client:
        for path in PAGES:
            response = await client.get(path)
            assert response.status_code == 503
            assert "make install" in response.text
            assert "fetch-docs-assets.sh" in response.text
        assert (await client.get("/favicon.ico")).status_code == 404
        assert (await client.get("/docs-assets/swagger-ui-bundle.js")).status_code == 404
