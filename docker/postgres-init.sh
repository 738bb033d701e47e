#!/usr/bin/env bash
# Runs once, when the postgres volume is first initialised (the image runs
# /docker-entrypoint-initdb.d/* as POSTGRES_USER, the owner): creates the
# application's role (docker/postgres-roles.sql) with the password from the
# app_db_password secret. For a volume created before this script existed, run
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-app-role.sh
set -euo pipefail

password_file="${APP_DB_PASSWORD_FILE:?APP_DB_PASSWORD_FILE is not set}"
password="$(tr -d '\r\n' < "$password_file")"
if [ -z "$password" ]; then
    echo "postgres-init: $password_file is empty" >&2
    exit 1
fi
# The password travels to psql as a variable on stdin's script, not on a command line.
{
    printf '\\set app_role %s\n' "${APP_DB_USER:-guideline_app}"
    printf '\\set app_password %s\n' "'${password//\'/\'\'}'"
    cat "${ROLES_SQL:-/etc/guideline/postgres-roles.sql}"
} | psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB}" -q -f -
echo "postgres-init: role ${APP_DB_USER:-guideline_app} ready"
