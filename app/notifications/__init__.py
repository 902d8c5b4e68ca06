"""In-app notifications for citizens (points expiring, badges earned, coupons, ...)."""
