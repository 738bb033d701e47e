#!/usr/bin/env bash
# Manual check (not part of CI): renders /swagger and /redoc in headless
# Chromium with background networking off and writes screenshots, so a person
# can see that the pages draw with only what the service itself serves.
#
# Usage: scripts/check-docs-offline.sh [OUT_DIR]
# Needs: chromium (apt-get install chromium) and the docs assets (make install).
# Starts a small app (the docs router plus /openapi.json) on a free local port.
# Every host but 127.0.0.1 is made unresolvable, and the network log of each
# page is searched for requests to any other host.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo_root/build/docs-check}"
python="${PYTHON:-$repo_root/.venv/bin/python}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$browser" ]] || { echo "check-docs-offline: chromium is not installed" >&2; exit 1; }
"$repo_root/scripts/fetch-docs-assets.sh" >/dev/null 2>&1 \
    || [[ -s "$repo_root/src/adapters/http/static/vendor/swagger-ui-bundle.js" ]] \
    || { echo "check-docs-offline: docs assets missing; run make install" >&2; exit 1; }

mkdir -p "$out"
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
app_log="$out/app.log"

"$python" - "$port" >"$app_log" 2>&1 <<'PY' &
import sys
from typing import Any

import uvicorn
from litestar import Litestar, Request, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from adapters.http.docs import docs_router


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return request.app.openapi_schema.to_schema()


@get("/jobs/{event_id:str}", sync_to_thread=False, summary="Get a job")
def get_job(event_id: str) -> dict[str, str]:
    """Returns the job with its status, summary and checklist."""
    return {"event_id": event_id}


app = Litestar(
    route_handlers=[docs_router(), openapi_json, get_job],
    openapi_config=OpenAPIConfig(
        title="Guideline Ingest", version="0.1.0", path="/schema",
        render_plugins=[JsonRenderPlugin()],
    ),
)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
PY
app_pid=$!
trap 'kill "$app_pid" 2>/dev/null || true' EXIT

for _ in $(seq 50); do
    "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/swagger')" \
        2>/dev/null && break
    sleep 0.2
done

status=0
for page in swagger redoc; do
    png="$out/$page.png"
    rm -f "$png"
    # A throwaway profile; no sync, component updates or other background traffic.
    profile="$(mktemp -d)"
    timeout 60 "$browser" --headless --no-sandbox --disable-gpu \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-default-apps --no-first-run --user-data-dir="$profile" \
        --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
        --log-net-log="$out/$page.netlog.json" \
        --enable-logging=stderr --v=0 \
        --window-size=1280,1600 --virtual-time-budget=10000 \
        --screenshot="$png" "http://127.0.0.1:$port/$page" >"$out/$page.log" 2>&1 || true
    rm -rf "$profile"
    # Any URL the page asked for that is not this service is an offline bug.
    # Chromium's own background calls (updates, time, accounts, autofill) are
    # left out by exact host; any other host counts.
    external="$(grep -oE '"url":"[a-z]+://[^"]*"' "$out/$page.netlog.json" 2>/dev/null \
        | grep -v "://127.0.0.1:$port/" \
        | grep -vE '://(clients2\.google\.com|update\.googleapis\.com|accounts\.google\.com|content-autofill\.googleapis\.com)/' \
        | sort -u || true)"
    if [[ -n "$external" ]]; then
        echo "check-docs-offline: /$page asked for other hosts:" >&2
        echo "$external" >&2
        status=1
    fi
    # The page's Content-Security-Policy blocking a request is the policy at
    # work (Redoc's footer logo); any other console message is a problem.
    if grep 'CONSOLE' "$out/$page.log" | grep 'has been blocked' >/dev/null; then
        echo "check-docs-offline: /$page: blocked by its CSP:" \
            "$(grep -oE "Loading the [a-z]+ '[^']*'" "$out/$page.log" | sort -u | tr '\n' ' ')"
    fi
    if grep 'CONSOLE' "$out/$page.log" | grep -v 'has been blocked' >&2; then
        echo "check-docs-offline: /$page logged console messages (above)" >&2
        status=1
    fi
    if [[ -s "$png" ]]; then
        echo "check-docs-offline: $page -> $png"
    else
        echo "check-docs-offline: no screenshot of /$page (see $out/$page.log)" >&2
        status=1
    fi
done
exit "$status"
