"""Citizens, their consents and home district; data export and erasure."""
