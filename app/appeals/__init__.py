"""Appeals for a missing credit: a citizen asks, a reviewer decides."""
