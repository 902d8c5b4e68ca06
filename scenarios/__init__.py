"""Scenarios: the pure calculation engine and the methodology/scenario definitions.

Nothing in this package touches Flask or the database: `engine` turns validated activity data
into grams CO2e with a trace, `definitions` reads and checks the methodology YAML files that seed
the registry (and the JSON copies of them the database keeps).
"""
