"""Change feeds for live progress: in-process (embedded mode) and Redis pub/sub."""
