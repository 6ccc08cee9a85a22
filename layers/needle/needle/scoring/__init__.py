"""Unusualness scoring of alerts per entity (no AWS here)."""
