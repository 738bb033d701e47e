"""Per-key rate limits: in memory (one process) or in Redis (shared by every API process)."""
