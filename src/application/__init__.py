"""Use cases and the ports they speak to. Imports the domain and nothing else of the project."""
