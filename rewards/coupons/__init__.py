"""Offers (coupons, vouchers 兑换券), claims with points holds, rotating QR tokens, redemption at checkout."""
