"""Idempotency keys for retried writes (Formance: key + request hash stored with the write)."""
