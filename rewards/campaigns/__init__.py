"""Campaigns: time-boxed multipliers and bonuses with a points budget (BRIEF R5.3)."""
