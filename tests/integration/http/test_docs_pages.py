"""The docs pages (/swagger, /redoc) of the real application load everything from the
service itself.

The pages are requested from the app that `entrypoints.asgi.create_app` builds (the
`client` fixture of conftest.py), so they are the routes, middleware and OpenAPI
document the service really serves. Needs the vendor bundles: `make install`
(scripts/fetch-docs-assets.sh) fetches them.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from http_support import Client
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.http.docs import VENDOR_DIR, docs_router

PAGES = ("/swagger", "/redoc")
REQUIRED_ASSETS = (
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "favicon-32x32.png",
    "redoc.standalone.js",
)
DOCS_ROUTES = ("/swagger", "/redoc", "/favicon.ico", "/docs-assets")


@pytest.fixture(autouse=True)
def assets_installed() -> None:
    missing = [name for name in REQUIRED_ASSETS if not (VENDOR_DIR / name).is_file()]
    assert not missing, f"docs assets missing: {missing}; run `make install`"


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


_SPEC_URL = re.compile(r'spec-url="([^"]*)"|\burl: "([^"]*)"')


def spec_url(page: str) -> str:
    """The OpenAPI document a page loads: Redoc's `spec-url`, Swagger UI's `url:`."""
    (found,) = _SPEC_URL.findall(page)
    return found[0] or found[1]


@pytest.mark.parametrize("path", PAGES)
async def test_page_is_html_with_no_external_url(client: Client, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "http://" not in response.text
    assert "https://" not in response.text
    assert "//" not in "".join(references(response.text))  # no protocol-relative URL either


@pytest.mark.parametrize("path", PAGES)
async def test_page_policy_allows_this_service_only(client: Client, path: str) -> None:
    policy = (await client.get(path)).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))

    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"  # blocks Redoc's CDN-hosted footer logo
    assert directives["connect-src"] == "'self'"
    assert "http" not in policy
    assert "unsafe-eval" not in policy
    assert "'unsafe-inline'" not in directives["script-src"]


@pytest.mark.parametrize("path", PAGES)
async def test_every_reference_is_served_locally(client: Client, path: str) -> None:
    page = (await client.get(path)).text
    urls = references(page)

    assert any(url.endswith(".js") for url in urls)
    for url in urls:
        assert url.startswith("/"), url
        response = await client.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 100, url


@pytest.mark.parametrize("path", PAGES)
async def test_each_page_loads_the_services_own_document(client: Client, path: str) -> None:
    """`/openapi.json`, the corrected document, and no other (not Litestar's /schema)."""
    page = (await client.get(path)).text

    assert spec_url(page) == "/openapi.json"
    document = (await client.get(spec_url(page))).json()
    assert "/jobs" in document["paths"]


async def test_assets_have_the_right_types(client: Client) -> None:
    js = await client.get("/docs-assets/swagger-ui-bundle.js")
    css = await client.get("/docs-assets/swagger-ui.css")
    redoc = await client.get("/docs-assets/redoc.standalone.js")

    assert "javascript" in js.headers["content-type"]
    assert css.headers["content-type"].startswith("text/css")
    assert "javascript" in redoc.headers["content-type"]
    assert "max-age" in js.headers["cache-control"]


async def test_favicon_is_served(client: Client) -> None:
    response = await client.get("/favicon.ico")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


async def test_the_pages_document_the_service_and_leave_the_docs_routes_out(
    client: Client,
) -> None:
    """The document the pages load is the service's own: its /jobs operations, without
    the pages and assets themselves."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()

    assert document["openapi"].startswith("3.1")
    assert {"/jobs", "/jobs/{event_id}", "/health/ready"} <= set(document["paths"])
    assert not [p for p in document["paths"] if p.startswith(DOCS_ROUTES)]


async def test_missing_assets_answer_503_saying_how_to_fetch_them(tmp_path: Path) -> None:
    """The real app always serves the installed bundles, so the missing case is shown on
    the docs router alone, pointed at an empty directory."""
    app = Litestar(route_handlers=[docs_router(vendor_dir=tmp_path)])
    async with AsyncTestClient(app=app) as client:
        for path in PAGES:
            response = await client.get(path)
            assert response.status_code == 503
            assert "make install" in response.text
            assert "fetch-docs-assets.sh" in response.text
        assert (await client.get("/favicon.ico")).status_code == 404
        assert (await client.get("/docs-assets/swagger-ui-bundle.js")).status_code == 404
