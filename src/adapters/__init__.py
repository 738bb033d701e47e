"""Adapters: one sub-package per outside thing."""
