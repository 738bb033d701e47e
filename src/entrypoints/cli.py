"""`guideline-ingest`: serve, worker, migrate, keys, submit.

Exit status: 0 success; 1 the job failed or was cancelled, or the service
refused; 2 a usage error. Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import sys
from collections.abc import Sequence

from application.errors import StorageUnavailable
from entrypoints.settings import Settings, SettingsError, load_settings


class CliError(Exception):
    """One line for stderr, and an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guideline-ingest",
        description="Turn clinical guidelines into summaries and checklists.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API (and, with no broker, the jobs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes (broker mode only)")

    worker = commands.add_parser("worker", help="run a Celery worker")
    worker.add_argument("--concurrency", type=int, default=None, help="jobs in flight per process")

    commands.add_parser("migrate", help="bring the database schema up to date")

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="make a key for OWNER (printed once)")
    create.add_argument("owner")
    key_commands.add_parser("list", help="list keys (never their secret)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")

    webhooks = commands.add_parser("webhooks", help="callback signing")
    webhook_commands = webhooks.add_subparsers(
        dest="webhooks_command", required=True, metavar="ACTION"
    )
    webhook_commands.add_parser("secret", help="print a fresh whsec_ signing secret")

    submit = commands.add_parser("submit", help="submit a file's text to a running service")
    submit.add_argument("file", help="a text file, or - for stdin")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends")
    submit.add_argument("--json", action="store_true", help="print the raw job as JSON")
    submit.add_argument("--url", default="http://127.0.0.1:8000")
    submit.add_argument("--key", default=None, help="API key (default: $GUIDELINE_INGEST_API_KEY)")
    submit.add_argument("--idempotency-key", default=None)
    submit.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "submit":
            from entrypoints.submit_client import run_submit

            return run_submit(args)
        if args.command == "webhooks":
            print(new_signing_secret())
            return 0
        settings = load_settings()
        return _run(args, settings)
    except SettingsError as exc:
        print(f"guideline-ingest: setting error: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"guideline-ingest: {exc}", file=sys.stderr)
        return exc.status
    except StorageUnavailable:
        print("guideline-ingest: the database is unavailable (see DATABASE_URL)", file=sys.stderr)
        return 1
    except Exception as exc:  # one line, never a traceback (the type says what failed)
        print(f"guideline-ingest: failed: {type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "worker":
        from entrypoints.worker import run_worker

        return run_worker(settings, args.concurrency)
    if args.command == "migrate":
        from adapters.persistence.migrate import upgrade

        upgrade(settings.database_url)
        print("database schema is up to date")
        return 0
    return asyncio.run(_keys(args, settings))


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    workers = args.workers
    if settings.embedded and workers != 1:
        raise CliError(
            "--workers > 1 needs CELERY_BROKER_URL (embedded jobs run in one process)", 2
        )
    uvicorn.run(
        "entrypoints.asgi:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
        access_log=False,
    )
    return 0


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.persistence.migrate import upgrade
    from entrypoints.container import build_container, shutdown

    if settings.is_sqlite:
        await asyncio.to_thread(upgrade, settings.database_url)
    container = build_container(settings)
    try:
        if args.keys_command == "create":
            try:
                issued = await container.create_api_key().execute(args.owner)
            except ValueError as exc:
                raise CliError(str(exc), 2) from exc
            print(f"key id {issued.record.key_id} for owner {issued.record.owner} (shown once):")
            print(issued.token)
        elif args.keys_command == "list":
            for key in await container.list_api_keys().execute():
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                print(f"{key.key_id}\t{key.owner}\t{key.created_at:%Y-%m-%dT%H:%M:%SZ}\t{state}")
        elif not await container.revoke_api_key().execute(args.key_id):
            raise CliError(f"no active key with id {args.key_id}")
        else:
            print(f"key {args.key_id} revoked")
    finally:
        await shutdown(container)
    return 0


if __name__ == "__main__":
    sys.exit(main())
