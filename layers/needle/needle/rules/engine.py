"""Streaming evaluation of correlation rules on one entity's recent timeline.

Rules follow Sigma correlation semantics where they fit; this module implements `event_count`
(at least N matching events within the timespan) and `value_count` (at least N distinct values
of a field). A rule fires only for a window that contains the new event, so each new event
is evaluated once, in seconds, not in a daily batch.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from needle.model.attack import tactic
from needle.model.event import Event

_SPAN = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
RULE_TYPES = ("event_count", "value_count")


class RuleError(ValueError):
    """A rule file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    type: str
    match: dict[str, Any]
    field: str | None
    timespan: timedelta
    gte: int
    # Only events scored at least this unusual for their entity count (None: every event).
    # Recurring noise scores low, so a rule with min_score fires on what is new, not on volume.
    min_score: int | None
    attack: tuple[str, ...]
    runbook: str
    tests: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Match:
    rule: Rule
    incident_id: str
    entity_id: str
    events: tuple[Event, ...]
    values: tuple[str, ...]


def parse_rule(doc: dict[str, Any], origin: str = "<rule>") -> Rule:
    try:
        rule_type = str(doc["type"])
        if rule_type not in RULE_TYPES:
            raise RuleError(f"{origin}: type {rule_type!r} is not one of {RULE_TYPES}")
        span = _SPAN.match(str(doc["timespan"]))
        if not span:
            raise RuleError(f"{origin}: timespan {doc['timespan']!r} is not like 30m, 24h, 7d")
        field = doc.get("field")
        if rule_type == "value_count" and not field:
            raise RuleError(f"{origin}: value_count needs `field`")
        condition = doc["condition"]
        threshold = condition.get("gte") if isinstance(condition, dict) else None
        # bool is an int in Python: `gte: yes` must not become a threshold of 1.
        if type(threshold) is not int or threshold < 1:
            raise RuleError(f"{origin}: condition must be like {{gte: 3}} with a whole number >= 1")
        if int(span.group(1)) < 1:
            raise RuleError(f"{origin}: timespan must be at least 1{span.group(2)}")
        min_score = doc.get("min_score")
        if min_score is not None and (type(min_score) is not int or not 0 <= min_score <= 100):
            raise RuleError(f"{origin}: min_score must be a whole number from 0 to 100")
        return Rule(
            id=str(doc["id"]),
            title=str(doc["title"]),
            severity=str(doc.get("severity", "medium")),
            type=rule_type,
            match=dict(doc.get("match") or {}),
            field=str(field) if field else None,
            timespan=timedelta(**{_UNITS[span.group(2)]: int(span.group(1))}),
            gte=threshold,
            min_score=min_score,
            attack=tuple(doc.get("attack") or ()),
            runbook=str(doc.get("runbook", "")),
            tests=dict(doc.get("tests") or {}),
        )
    except KeyError as exc:
        raise RuleError(f"{origin}: missing {exc.args[0]!r}") from exc


def load_rules(directory: Path | None = None) -> list[Rule]:
    """The built-in pack, or every *.yaml in `directory`."""
    if directory is None:
        files = sorted(
            (f.name, f.read_text())
            for f in resources.files("needle.rules.builtin").iterdir()
            if f.name.endswith(".yaml")
        )
    else:
        files = sorted((p.name, p.read_text()) for p in directory.glob("*.yaml"))
    return [parse_rule(yaml.safe_load(text), origin=name) for name, text in files]


def matches(rule: Rule, event: Event) -> bool:
    if rule.min_score is not None and (event.score is None or event.score < rule.min_score):
        return False
    for key, expected in rule.match.items():
        value = getattr(event, key, None)
        allowed = expected if isinstance(expected, list) else [expected]
        if value not in allowed:
            return False
    return True


def evaluate(rule: Rule, new: Event, timeline: list[Event]) -> Match | None:
    """Does `new`, with the entity's earlier events in `timeline`, satisfy the rule?"""
    if not matches(rule, new):
        return None
    start = new.time - rule.timespan
    window = [e for e in timeline if start <= e.time <= new.time and matches(rule, e) and e.uid != new.uid]
    window.append(new)
    if rule.type == "event_count":
        fired = len(window) >= rule.gte
        values: tuple[str, ...] = ()
    else:
        assert rule.field is not None
        distinct = {v for e in window for v in _values(e, rule.field)}
        fired = len(distinct) >= rule.gte and bool(set(_values(new, rule.field)))
        values = tuple(sorted(distinct))
    if not fired:
        return None
    return Match(
        rule=rule,
        incident_id=incident_id(rule, new.entity_id, new.time),
        entity_id=new.entity_id,
        events=tuple(sorted(window, key=lambda e: e.time)),
        values=values,
    )


def incident_id(rule: Rule, entity_id: str, moment: datetime) -> str:
    """Deterministic per (rule, entity, window bucket): follow-up matches merge into it."""
    bucket = int(moment.timestamp() // rule.timespan.total_seconds())
    digest = hashlib.sha256(f"{rule.id}|{entity_id}|{bucket}".encode()).hexdigest()[:16]
    return f"inc-{digest}"


def _values(event: Event, field: str) -> list[str]:
    if field == "tactics":
        # Vendors name one tactic many ways ("CredentialAccess", "Credential Access", "TA0006")
        # and put non-ATT&CK categories ("Malware") in the same field: count ATT&CK ids only.
        return sorted({t[0] for t in (tactic(label) for label in event.tactics) if t})
    value = getattr(event, field, None)
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]
