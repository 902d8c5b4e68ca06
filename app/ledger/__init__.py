"""The double-entry, append-only points ledger."""
