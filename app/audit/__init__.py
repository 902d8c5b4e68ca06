"""The append-only, hash-chained audit log of privileged actions."""
