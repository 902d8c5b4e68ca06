"""A valid methodology body for the registry's API, and small helpers shared by its tests."""
from __future__ import annotations

import uuid
from typing import Any


def ebike_body(code: str = "SHCI-P-EBIKE", **changes: Any) -> dict[str, Any]:
    """An e-bike-sharing methodology: a distance field, one parameter, co-benefits and a document."""
    body: dict[str, Any] = {
        "code": code,
        "type": "personal",
        "title": {"zh": "共享电单车出行", "en": "Shared e-bike trip"},
        "fields": [{"name": "distance_km", "type": "decimal", "unit": "km", "min": 0.1, "max": 50}],
        "parameters": [{"name": "net_g_per_km", "unit": "gCO2e/km", "value": "61.5",
                        "source": "Operator survey 2026, table 3"}],
        "formula": "distance_km * net_g_per_km",
        "data_requirements": {"zh": "运营方上报每次骑行里程。", "en": "The operator reports each ride's distance."},
        "co_benefits": {"nox": {"value": "0.021", "unit": "g/km", "source": "MEE vehicle emission guide 2024"}},
        "documents": [{"title": "Methodology text", "reference": "https://example.gov.cn/ebike.pdf"}],
    }
    body.update(changes)
    return body


def idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}
