"""structlog configured once: console on a terminal, JSON lines otherwise.

Standard-library log records (the application layer logs through `logging`)
go through the same processors, with their `extra` fields kept.
"""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure_logging(log_format: str = "json", level: str = "INFO") -> None:
    global _configured
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ]
        if log_format == "json"
        else [*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([structlog.processors.format_exc_info] if log_format == "json" else []),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request access lines from the server and the HTTP client add noise, not facts.
    for noisy in ("uvicorn.access", "httpx", "httpx2", "httpcore", "openai._base_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The SQLite driver logs every statement with its values (job text, key hashes) at
    # DEBUG; SQLAlchemy's own lines hide them (`hide_parameters`).
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    _configured = True
