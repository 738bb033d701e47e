"""Composition: settings, the DI container, the ASGI app, the Celery app and the CLI."""
