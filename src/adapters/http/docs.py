"""The API documentation pages: Swagger UI at /swagger and Redoc at /redoc.

Both pages work with no internet access. Their JavaScript, CSS and icon are
served by the service itself from ``static/vendor/``, which
``scripts/fetch-docs-assets.sh`` fills at build time from the npm packages
pinned (with their integrity) in ``docs-assets.txt``; the bundles are never
committed. When they are missing the pages answer 503 saying how to fetch
them, rather than rendering a blank page.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.response import File, Response
from litestar.static_files import create_static_files_router

__all__ = ["ASSETS_PATH", "VENDOR_DIR", "docs_router"]

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"
ASSETS_PATH = "/docs-assets"

_SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
_REDOC_FILES = ("redoc.standalone.js", "favicon-32x32.png")
_FAVICON = "favicon-32x32.png"
_MISSING_HINT = (
    "The API docs assets are not installed ({missing} missing). "
    "Run `make install` (or scripts/fetch-docs-assets.sh) and restart the service."
)


def docs_router(
    openapi_url: str = "/openapi.json",
    title: str = "Guideline Ingest",
    *,
    vendor_dir: Path = VENDOR_DIR,
) -> Router:
    """Routes for /swagger, /redoc, /favicon.ico and the assets under /docs-assets/."""
    swagger_script = _swagger_script(openapi_url)
    swagger_html = _swagger_page(swagger_script, title)
    swagger_headers = {"Content-Security-Policy": _csp(inline_script=swagger_script)}
    redoc_html = _redoc_page(openapi_url, title)
    redoc_headers = {"Content-Security-Policy": _csp()}

    @get("/swagger", include_in_schema=False, sync_to_thread=False)
    def swagger() -> Response[str]:
        _require(vendor_dir, _SWAGGER_FILES)
        return Response(swagger_html, media_type=MediaType.HTML, headers=swagger_headers)

    @get("/redoc", include_in_schema=False, sync_to_thread=False)
    def redoc() -> Response[str]:
        _require(vendor_dir, _REDOC_FILES)
        return Response(redoc_html, media_type=MediaType.HTML, headers=redoc_headers)

    @get("/favicon.ico", include_in_schema=False, sync_to_thread=False)
    def favicon() -> File:
        path = vendor_dir / _FAVICON
        if not path.is_file():
            raise NotFoundException()
        return File(path, media_type="image/png", content_disposition_type="inline")

    assets = create_static_files_router(
        path=ASSETS_PATH,
        directories=[vendor_dir],
        name="docs-assets",
        include_in_schema=False,
        # The URLs carry no version, so a new bundle reaches browsers within an hour.
        cache_control=CacheControlHeader(public=True, max_age=3600),
    )
    return Router(path="/", route_handlers=[swagger, redoc, favicon, assets])


def _require(vendor_dir: Path, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not (vendor_dir / name).is_file()]
    if missing:
        raise ServiceUnavailableException(detail=_MISSING_HINT.format(missing=", ".join(missing)))


def _csp(inline_script: str | None = None) -> str:
    """A policy that lets the page load from this service only.

    It also stops what the bundles themselves would fetch from elsewhere (Redoc's
    footer loads its vendor's logo from a CDN; the image then simply hides).
    The bundles style elements inline, and Redoc's search runs in a blob worker.
    """
    script_src = "'self'"
    if inline_script is not None:
        digest = hashlib.sha256(inline_script.encode()).digest()
        script_src += f" 'sha256-{base64.b64encode(digest).decode()}'"
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src {script_src}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "worker-src 'self' blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'",
        )
    )


def _js(value: str) -> str:
    """A JavaScript string literal that is also safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


def _head(title: str) -> str:
    return (
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/{_FAVICON}">\n'
    )


def _swagger_script(openapi_url: str) -> str:
    # validatorUrl: null keeps Swagger UI from sending the document to its online validator.
    return f"""
window.ui = SwaggerUIBundle({{
  url: {_js(openapi_url)},
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null
}});
"""


def _swagger_page(script: str, title: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
{_head(title + " - Swagger UI")}<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script>{script}</script>
</body>
</html>
"""


def _redoc_page(openapi_url: str, title: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
{_head(title + " - Redoc")}<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="{html.escape(openapi_url)}"></redoc>
<script src="{ASSETS_PATH}/redoc.standalone.js"></script>
</body>
</html>
"""
