"""One use case per module; each takes its ports in the constructor and has one `execute`."""
