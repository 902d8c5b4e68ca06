"""Property-based fuzzing of the offer, coupon and redemption operations, past their authentication.

tests/test_schemathesis.py fuzzes every operation but signs in only as a citizen on /me routes;
here /offers and /me/coupons carry a citizen's token and /merchant/* a merchant admin's, against
a world with a live offer and a claimed coupon, so the fuzzer reaches the services. Same checks:
no 5xx, our error body on every 4xx, bodies and content types as the spec documents them.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from app.extensions import db
from tests.conftest import bearer_as, bearer_for, make_citizen, truncate_all
from tests.rewards.factories import make_merchant, make_merchant_staff
from tests.rewards.test_coupons_support import give_points, make_offer
from tests.test_schemathesis import CONFIG, MAX_EXAMPLES, SPEC, error_has_our_shape

PATHS = r"^/api/v1/(offers|me/coupons|merchant/(offers|redemptions|settlement))"


@dataclass(frozen=True)
class CouponWorld:
    citizen: dict[str, str]
    merchant_admin: dict[str, str]


@pytest.fixture
def coupon_world(app: Flask) -> Iterator[CouponWorld]:
    from rewards.coupons.service import claim_offer

    with app.app_context():
        merchant_id, _ = make_merchant()
        admin_id, _ = make_merchant_staff(merchant_id, role="merchant_admin")
        offer_id = make_offer(merchant_id, per_citizen_limit=1000, total_stock=1000, points_price=1)
        citizen_id = make_citizen()
        give_points(citizen_id, 100_000)
        claim_offer(citizen_id, offer_id)
        world = CouponWorld(bearer_for(citizen_id), bearer_as(f"merchant_staff:{admin_id}", "merchant_admin"))
        db.session.commit()
        db.session.remove()
    try:
        yield world
    finally:
        with app.app_context():
            db.session.remove()
            truncate_all()


@pytest.fixture
def coupon_schema(app: Flask, coupon_world: CouponWorld) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_wsgi(SPEC, app, config=CONFIG)


schema = schemathesis.pytest.from_fixture("coupon_schema").include(path_regex=PATHS)


@schema.parametrize()
@settings(max_examples=max(1, MAX_EXAMPLES // 2), deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_coupon_operations_never_fail_on_any_input(case: schemathesis.Case, coupon_world: CouponWorld) -> None:
    merchant_side = case.path.startswith("/api/v1/merchant/")
    response = case.call(headers=dict(coupon_world.merchant_admin if merchant_side else coupon_world.citizen))
    case.validate_response(response, checks=[not_a_server_error, error_has_our_shape, response_schema_conformance,
                                             content_type_conformance])
