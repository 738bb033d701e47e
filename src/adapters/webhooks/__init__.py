"""Callback delivery over HTTP: Standard Webhooks signatures, an SSRF guard, no redirects."""
