"""The methodology registry: drafting, review, filing (备案), versions and retirement (issue 5)."""
