"""Job dispatchers: in-process (embedded mode) and Celery."""
