"""Correlation rules: YAML definitions evaluated on an entity's recent timeline (no AWS here)."""
