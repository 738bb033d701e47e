"""Logging (structlog) and metrics (Prometheus)."""
