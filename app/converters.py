"""URL converters. A path id is a positive 64-bit integer, like every primary key (BIGINT): an id
PostgreSQL could not compare is a 404 from routing, never a 500 from the database."""
from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

ROW_ID_MAX = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """`<id:consent_id>`: 1 … 2^63-1; documented in the OpenAPI spec with those bounds."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **{"min": 1, "max": ROW_ID_MAX, **kwargs})
