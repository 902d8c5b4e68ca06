"""Partner data providers: registry, signing secrets, request signatures, account bindings."""
