"""Needle: EDR alerts with context, unusualness scores, correlation and investigation."""
