"""Builders for the OCSF 1.5 Detection Finding subset shared by every normalizer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from needle.model.attack import tactic
from needle.model.event import SEVERITIES

DETECTION_FINDING = 2004
FINDINGS_CATEGORY = 2
OCSF_VERSION = "1.5.0"

STATUS_IDS = {"new": 1, "in_progress": 2, "suppressed": 3, "resolved": 4}


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def attacks(tactics: list[str], techniques: list[str]) -> list[dict[str, Any]]:
    """OCSF `finding_info.attacks`: one entry per technique, carrying the alert's first tactic."""
    resolved = [t for t in (tactic(label) for label in tactics) if t]
    first = {"uid": resolved[0][0], "name": resolved[0][1]} if resolved else None
    out: list[dict[str, Any]] = [
        {"technique": {"uid": tech}, **({"tactic": first} if first else {})} for tech in techniques
    ]
    if not out and first:
        out.append({"tactic": first})
    return out


def detection_finding(
    *,
    uid: str,
    title: str,
    description: str | None,
    severity_id: int,
    status: str,
    created: datetime,
    first_seen: datetime | None,
    last_seen: datetime | None,
    modified: datetime,
    analytic: dict[str, Any],
    tactics: list[str],
    techniques: list[str],
    device: dict[str, Any] | None,
    evidences: list[dict[str, Any]],
    vendor: str,
    product: str,
    console_url: str | None,
    verdict: str | None,
    unmapped: dict[str, Any],
) -> dict[str, Any]:
    """Assemble a Detection Finding; None-valued optional members are left out."""
    finding: dict[str, Any] = {
        "class_uid": DETECTION_FINDING,
        "category_uid": FINDINGS_CATEGORY,
        "activity_id": 1,
        "type_uid": DETECTION_FINDING * 100 + 1,
        "time": epoch_ms(created),
        "severity_id": severity_id,
        "severity": SEVERITIES.get(severity_id, "Other"),
        "status_id": STATUS_IDS.get(status, 99),
        "status": status,
        "finding_info": {
            "uid": uid,
            "title": title,
            "desc": description,
            "created_time": epoch_ms(created),
            "first_seen_time": epoch_ms(first_seen),
            "last_seen_time": epoch_ms(last_seen),
            "modified_time": epoch_ms(modified),
            "analytic": analytic,
            "attacks": attacks(tactics, techniques),
            "types": tactics,
            "src_url": console_url,
        },
        "device": device,
        "evidences": evidences,
        "metadata": {"version": OCSF_VERSION, "product": {"vendor_name": vendor, "name": product}},
        "verdict": verdict,
        "unmapped": unmapped,
    }
    pruned: dict[str, Any] = prune(finding)
    return pruned


# Findings are stored in one DynamoDB item (400 KB) beside the raw payload, and every string in
# them is attacker-influenced (command lines, file names): each is cut at this many characters.
MAX_FIELD_CHARS = 8192


def prune(value: Any) -> Any:
    """Drop None and empty containers and cut long strings, recursively, so findings stay bounded.

    Normalizers call this once per alert on the whole finding: it is their hottest code, so it
    dispatches on exact types and recurses only into containers.
    """
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            item_kind = type(item)
            if item_kind is dict or item_kind is list:
                item = prune(item)
                if not item:
                    continue
            elif item_kind is str and len(item) > MAX_FIELD_CHARS:
                item = _cut(item)
            out[key] = item
        return out
    if kind is list:
        items = []
        for item in value:
            if item is None:
                continue
            item_kind = type(item)
            if item_kind is dict or item_kind is list:
                item = prune(item)
                if not item:
                    continue
            elif item_kind is str and len(item) > MAX_FIELD_CHARS:
                item = _cut(item)
            items.append(item)
        return items
    if kind is str and len(value) > MAX_FIELD_CHARS:
        return _cut(value)
    return value


def _cut(text: str) -> str:
    return text[:MAX_FIELD_CHARS] + f"…[{len(text) - MAX_FIELD_CHARS} more characters]"
