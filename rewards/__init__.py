"""Rewards: merchants, offers, coupons, redemption, honours and campaigns (BRIEF R6, R5.3)."""
