"""Lambda event-filtering patterns (FilterCriteria), the subset Needle's template uses and a little more.

Supported: exact values in a list, nested objects, {"prefix": s}, {"anything-but": [..]},
{"exists": bool}. Anything else raises, so a template never silently filters differently here
than in AWS.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


class UnsupportedPatternError(ValueError):
    pass


def matches(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    for key, expected in pattern.items():
        value = record.get(key, _MISSING) if isinstance(record, dict) else _MISSING
        if isinstance(expected, dict):
            if value is _MISSING or not isinstance(value, dict) or not matches(expected, value):
                return False
        elif isinstance(expected, list):
            if not any(_match_one(rule, value) for rule in expected):
                return False
        else:
            raise UnsupportedPatternError(f"pattern values must be lists or objects, got {expected!r}")
    return True


def _match_one(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        if "exists" in rule:
            return (value is not _MISSING) == bool(rule["exists"])
        if value is _MISSING:
            return False
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "anything-but" in rule:
            banned = rule["anything-but"]
            return value not in (banned if isinstance(banned, list) else [banned])
        raise UnsupportedPatternError(f"unsupported filter operator {sorted(rule)}")
    return value is not _MISSING and value == rule


def any_filter_matches(filters: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    """AWS semantics: no filters pass everything; otherwise any one filter may match."""
    return not filters or any(matches(f, record) for f in filters)
