"""Helpers shared by the test suites: fixtures and local stand-ins for outside services."""
