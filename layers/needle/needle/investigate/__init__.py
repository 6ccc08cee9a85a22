"""Automated investigation: gather evidence, conclude with a stated rule, report (no AWS in the core)."""
