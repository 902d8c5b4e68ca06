"""Recording behaviours: partner batches, self-declared actions, crediting, review holds."""
