"""Builders for the OCSF 1.5 Detection Finding subset shared by every normalizer.

A finding has no None members, no empty objects or lists, and no string longer than
MAX_FIELD_CHARS (plus a short note of what was cut): it is stored in one DynamoDB item (400 KB)
beside the raw payload, and vendor strings are attacker-influenced (command lines, file names).
Normalizers keep that true as they build, which costs far less than pruning the finished
finding. The rule: every value read from a payload, or made from one, goes through `clean` (or
`pick`, which reads and cleans), and every object or list is assembled by `obj`, `member` or
`objs`, which leave out what is None. tests/unit/test_ocsf.py checks it for every normalizer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from needle.model.attack import tactic
from needle.model.event import SEVERITIES, DeviceHints, Event, MalformedRecordError, parse_time

DETECTION_FINDING = 2004
FINDINGS_CATEGORY = 2
OCSF_VERSION = "1.5.0"

STATUS_IDS = {"new": 1, "in_progress": 2, "suppressed": 3, "resolved": 4}

MAX_FIELD_CHARS = 8192

MD5 = (1, "MD5")
SHA1 = (2, "SHA-1")
SHA256 = (3, "SHA-256")
# (OCSF member, vendor field) pairs: what `pick` copies from a vendor object.
Fields = tuple[tuple[str, str], ...]
# (vendor field, OCSF hash algorithm) pairs.
Algorithms = tuple[tuple[str, tuple[int, str]], ...]


def clean(value: Any) -> Any:
    """A vendor value fit for a finding: long strings cut, None and empty containers dropped.

    Containers are cleaned recursively; one with nothing left is None, as is None itself.
    """
    kind = type(value)
    if kind is str:
        return value if len(value) <= MAX_FIELD_CHARS else _cut(value)
    if kind is dict:
        # Keys too: vendor objects passed on as they are can carry any key.
        return obj({clean(key): clean(item) for key, item in value.items()})
    if kind is list:
        return objs([clean(item) for item in value])
    return value


def _cut(text: str) -> str:
    return text[:MAX_FIELD_CHARS] + f"…[{len(text) - MAX_FIELD_CHARS} more characters]"


def obj(members: dict[str, Any]) -> dict[str, Any] | None:
    """The object of the members (each already clean) that are not None; None if none is."""
    for value in members.values():
        if value is None:
            return {name: value for name, value in members.items() if value is not None} or None
    return members or None


def pick(source: dict[str, Any], fields: Fields) -> dict[str, Any] | None:
    """The object of the `fields` that `source` has, each cleaned; None if it has none."""
    members = {}
    for name, key in fields:
        value = source.get(key)
        if value is None:
            continue
        if type(value) is not str or len(value) > MAX_FIELD_CHARS:  # most are short strings
            value = clean(value)
            if value is None:
                continue
        members[name] = value
    return members or None


def member(name: str, value: Any) -> dict[str, Any] | None:
    """The object of one member (already clean); None if the member is."""
    return None if value is None else {name: value}


def objs(items: list[Any]) -> list[Any] | None:
    """The list of the items (each already clean) that are not None; None if none is."""
    if None in items:
        items = [item for item in items if item is not None]
    return items or None


def hashes(source: dict[str, Any], algorithms: Algorithms) -> list[dict[str, Any]] | None:
    """OCSF fingerprints of the hashes `source` has a value for."""
    found = [fingerprint(algorithm, source[key]) for key, algorithm in algorithms if source.get(key)]
    return found or None


def fingerprint(algorithm: tuple[int, str], value: Any) -> dict[str, Any]:
    """An OCSF fingerprint: (algorithm_id, algorithm) and the vendor's hash value."""
    algorithm_id, name = algorithm
    found = {"algorithm_id": algorithm_id, "algorithm": name}
    value = clean(value)
    if value is not None:
        found["value"] = value
    return found


def optional_time(value: Any) -> datetime | None:
    """A secondary vendor time, None when absent or unparseable: it is context, so a bad one
    must not cost the alert."""
    try:
        return parse_time(value) if value else None
    except MalformedRecordError:
        return None


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def attacks(tactics: list[str], techniques: list[str]) -> list[dict[str, Any]] | None:
    """OCSF `finding_info.attacks`: one entry per technique, carrying the alert's first tactic."""
    first = None
    for label in tactics:
        first = tactic(label)
        if first is not None:
            break
    if first is None:
        return [{"technique": {"uid": clean(technique)}} for technique in techniques] or None
    uid, name = first
    if not techniques:
        return [{"tactic": {"uid": uid, "name": name}}]
    return [
        {"technique": {"uid": clean(technique)}, "tactic": {"uid": uid, "name": name}}
        for technique in techniques
    ]


def edr_alert(
    *,
    source: str,
    uid: str,
    title: str,
    description: Any,
    severity_id: int,
    status: str,
    created: datetime,
    first_seen: datetime | None,
    last_seen: datetime | None,
    modified: datetime,
    analytic: dict[str, Any] | None,
    tactics: list[str],
    techniques: list[str],
    hints: DeviceHints,
    device: dict[str, Any] | None,
    evidences: list[dict[str, Any]] | None,
    vendor: str,
    product: str,
    console_url: str | None,
    verdict: Any,
    unmapped: dict[str, Any] | None,
    user: str | None,
    process: str | None,
    raw: dict[str, Any],
) -> Event:
    """The Event of one EDR alert, carrying its Detection Finding.

    `analytic`, `device`, `evidences` and `unmapped` come built (clean); every other value comes
    as read from the payload. The Event's own fields keep theirs whole: they key, place and
    label the alert.
    """
    created_ms = epoch_ms(created)
    info = obj(
        {
            "uid": clean(uid),
            "title": clean(title),
            "desc": clean(description),
            "created_time": created_ms,
            "first_seen_time": epoch_ms(first_seen),
            "last_seen_time": epoch_ms(last_seen),
            "modified_time": epoch_ms(modified),
            "analytic": analytic,
            "attacks": attacks(tactics, techniques),
            "types": clean(tactics),
            "src_url": clean(console_url),
        }
    )
    finding = obj(
        {
            "class_uid": DETECTION_FINDING,
            "category_uid": FINDINGS_CATEGORY,
            "activity_id": 1,
            "type_uid": DETECTION_FINDING * 100 + 1,
            "time": created_ms,
            "severity_id": severity_id,
            "severity": SEVERITIES.get(severity_id, "Other"),
            "status_id": STATUS_IDS.get(status, 99),
            "status": clean(status),
            "finding_info": info,
            "device": device,
            "evidences": evidences,
            "metadata": {"version": OCSF_VERSION, "product": {"vendor_name": vendor, "name": clean(product)}},
            "verdict": clean(verdict),
            "unmapped": unmapped,
        }
    )
    # Positional: this runs once per alert, and keywords would cost about a microsecond more.
    return Event(
        source,
        uid,
        "edr_alert",
        first_seen or created,
        modified,
        title,
        severity_id,
        status,
        tuple(tactics),
        tuple(techniques),
        hints,
        user,
        process,
        console_url,
        finding or {},  # never empty: class_uid and the like are always there
        raw,
    )
