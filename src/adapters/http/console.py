"""The web console at `/`: one page over the public API, with its own script and styles.

The files live in ``static/console/``: the page, and its script and styles under
``assets/`` (hand-written, no build step, nothing from another host). The page is sent
with ``Content-Security-Policy: default-src 'self'`` (no inline script or style), so
text from a job can never run as code there.
They are left out of the OpenAPI document: the console is a client of the API, not part
of it.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.response import Response
from litestar.static_files import create_static_files_router

__all__ = ["CONSOLE_ASSETS_PATH", "CONSOLE_CSP", "CONSOLE_DIR", "console_router"]

CONSOLE_DIR = Path(__file__).parent / "static" / "console"
CONSOLE_ASSETS_PATH = "/console-assets"
CONSOLE_CSP = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONSOLE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def console_router(console_dir: Path = CONSOLE_DIR) -> Router:
    """`GET /` (the page) and `GET /console-assets/...` (its script and styles)."""
    page = (console_dir / "index.html").read_text(encoding="utf-8")

    @get(
        "/",
        include_in_schema=False,
        sync_to_thread=False,
        cache_control=CacheControlHeader(no_cache=True),
    )
    def console() -> Response[str]:
        return Response(page, media_type=MediaType.HTML, headers=_HEADERS)

    assets = create_static_files_router(
        path=CONSOLE_ASSETS_PATH,
        directories=[console_dir / "assets"],
        name="console-assets",
        include_in_schema=False,
        # Unversioned URLs: browsers check again for a newer script on every load.
        cache_control=CacheControlHeader(no_cache=True),
    )
    return Router(path="/", route_handlers=[console, assets])
