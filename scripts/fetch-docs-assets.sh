#!/usr/bin/env bash
# Fetches the Swagger UI and Redoc bundles that the service serves for its
# offline docs pages (/swagger, /redoc). They come from the npm registry at
# build time (never committed): each package is fetched with `npm pack`, its
# tarball is checked against the sha512 integrity pinned in docs-assets.txt,
# and only the files the pages load are extracted into the vendor directory.
#
# Usage: scripts/fetch-docs-assets.sh [MANIFEST] [DEST_DIR]
#   MANIFEST  default: docs-assets.txt at the repository root
#   DEST_DIR  default: src/adapters/http/static/vendor
# Idempotent: a stamp file records the manifest it was built from; when it
# matches and every file is present, nothing is fetched.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest="${1:-$repo_root/docs-assets.txt}"
dest="${2:-$repo_root/src/adapters/http/static/vendor}"
stamp="$dest/.docs-assets.stamp"

die() {
    echo "fetch-docs-assets: error: $*" >&2
    exit 1
}

# Files to extract from each package: "<path in the tarball> <name in DEST_DIR>".
files_for() {
    case "$1" in
        swagger-ui-dist)
            echo "package/swagger-ui-bundle.js swagger-ui-bundle.js"
            echo "package/swagger-ui.css swagger-ui.css"
            echo "package/favicon-32x32.png favicon-32x32.png"
            ;;
        redoc)
            echo "package/bundles/redoc.standalone.js redoc.standalone.js"
            ;;
        *) die "docs-assets.txt names an unknown package '$1' (expected swagger-ui-dist or redoc)" ;;
    esac
}

[[ -f "$manifest" ]] || die "manifest not found: $manifest"
command -v npm >/dev/null || die "npm is not installed; it is needed to fetch the docs assets"
command -v node >/dev/null || die "node is not installed; it is needed to check the tarballs"

# The manifest without comments or blank lines is what the stamp records.
entries="$(grep -Ev '^[[:space:]]*(#|$)' "$manifest" || true)"
[[ -n "$entries" ]] || die "manifest $manifest lists no packages"

up_to_date() {
    [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$entries" ]] || return 1
    local name version integrity src out
    while read -r name version integrity; do
        while read -r src out; do
            [[ -s "$dest/$out" ]] || return 1
        done < <(files_for "$name")
    done <<<"$entries"
}

if up_to_date; then
    echo "fetch-docs-assets: up to date in $dest"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"
rm -f "$stamp"

while read -r name version integrity; do
    [[ -n "${name:-}" && -n "${version:-}" && "${integrity:-}" == sha512-* ]] \
        || die "bad line in $manifest: '$name $version $integrity' (want: name version sha512-...)"
    echo "fetch-docs-assets: fetching $name@$version"
    tarball="$(cd "$work" && npm pack --silent "$name@$version" | tail -n 1)"
    [[ -f "$work/$tarball" ]] || die "npm pack $name@$version produced no tarball"

    actual="sha512-$(node -e '
        const crypto = require("crypto"), fs = require("fs");
        process.stdout.write(crypto.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"));
    ' "$work/$tarball")"
    if [[ "$actual" != "$integrity" ]]; then
        die "integrity mismatch for $name@$version: expected $integrity, got $actual"
    fi

    mkdir -p "$work/$name"
    tar -xzf "$work/$tarball" -C "$work/$name"
    while read -r src out; do
        [[ -s "$work/$name/$src" ]] || die "$name@$version has no $src"
        cp "$work/$name/$src" "$dest/$out"
    done < <(files_for "$name")
done <<<"$entries"

printf '%s\n' "$entries" >"$stamp"
echo "fetch-docs-assets: installed into $dest"
