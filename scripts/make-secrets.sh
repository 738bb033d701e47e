#!/usr/bin/env bash
# Makes ./secrets/* for compose.yaml (compose secrets, mounted in /run/secrets):
#   postgres_password   the owner role "guideline" (migrations, admin)
#   app_db_password     the role "guideline_app" of api and worker (tables only)
#   redis_password      Redis's requirepass
#   openai_api_key      the worker's OpenAI key (empty: the offline provider)
#   webhook_signing_secret  signs callbacks (whsec_ + 32 random bytes; empty: no callbacks)
# Each password is 24 random bytes in hex. An existing file is kept.
# Usage: bash scripts/make-secrets.sh   (OPENAI_API_KEY in the environment, if any,
# goes into openai_api_key; otherwise it is left empty to fill in.)
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/secrets"
mkdir -p "$dir"
chmod 0700 "$dir"
for name in postgres_password app_db_password redis_password; do
    if [ ! -s "$dir/$name" ]; then
        openssl rand -hex 24 > "$dir/$name"
        echo "made secrets/$name"
    fi
done
if [ ! -e "$dir/webhook_signing_secret" ]; then
    printf 'whsec_%s\n' "$(openssl rand -base64 32)" > "$dir/webhook_signing_secret"
    echo "made secrets/webhook_signing_secret"
fi
if [ ! -e "$dir/openai_api_key" ]; then
    printf '%s' "${OPENAI_API_KEY:-}" > "$dir/openai_api_key"
    echo "made secrets/openai_api_key${OPENAI_API_KEY:+ (from OPENAI_API_KEY)}"
fi
# The containers run as other users (postgres 999, redis 999, app 10001) and
# compose mounts these files as they are: readable by all, inside a directory
# only you can enter.
chmod 0644 "$dir"/*
