"""Merchants, their stores and their staff (citizens bound to one merchant), issue 3 §1."""
