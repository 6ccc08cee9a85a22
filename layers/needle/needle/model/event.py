"""The normalized event: one shape for everything on an entity's timeline.

`finding` holds the OCSF 1.5 Detection Finding (class 2004) subset that users and rules see;
the typed fields beside it are the few that Needle itself keys, filters and scores on.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal["edr_alert", "network_detection", "needle_finding"]

# A raw payload larger than this is cut before compression: DynamoDB items stop at 400 KB and
# a vendor payload is attacker-influenced (command lines, file names), so its size is bounded.
RAW_LIMIT_BYTES = 64 * 1024

SEVERITIES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal"}


class MalformedRecordError(ValueError):
    """A vendor record that cannot be normalized; it is quarantined, never dropped silently."""


@dataclass(frozen=True)
class DeviceHints:
    """What a record says about the device it happened on, before entity resolution."""

    source: str
    device_id: str | None
    hostname: str | None
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    """A normalized timeline event (an EDR alert, a network detection or a Needle finding)."""

    source: str
    vendor_id: str
    kind: Kind
    time: datetime
    updated_at: datetime
    title: str
    severity_id: int
    status: str
    tactics: tuple[str, ...]
    techniques: tuple[str, ...]
    device: DeviceHints
    user: str | None
    process: str | None
    console_url: str | None
    finding: dict[str, Any]
    # The vendor payload as received; packed (gzip, size-bounded) only when stored, so
    # normalizing stays a mapping and never pays for compression. Not read back from storage.
    raw: dict[str, Any] | None = None
    entity_id: str = ""
    score: int | None = None
    explanation: str | None = None
    incident_ids: tuple[str, ...] = field(default=())

    @property
    def uid(self) -> str:
        return f"{self.source}:{self.vendor_id}"

    @property
    def sort_key(self) -> str:
        """Events table sort key: time-ordered, deterministic for one vendor alert."""
        return f"{iso(self.time)}#{self.kind}#{self.uid}"

    @property
    def severity(self) -> str:
        return SEVERITIES.get(self.severity_id, "Other")

    def content_hash(self) -> str:
        """Changes when anything a person would care about changes (not on a bare re-poll)."""
        material = json.dumps(self.finding, sort_keys=True, default=str).encode()
        return hashlib.sha256(material).hexdigest()[:32]

    def material_hash(self) -> str:
        """Changes when the detection says something new: what (title, description, analytic,
        ATT&CK), on which device, with which evidence. Not when its workflow moves (status,
        verdicts, assignment, remediation, device risk) or its clock does. Severity is compared
        apart by the store: only a raise is material."""
        info = self.finding.get("finding_info")
        device = self.finding.get("device")
        material = {
            "info": _stable(info),
            "device": [device.get("uid"), device.get("hostname")] if isinstance(device, dict) else None,
            "evidences": _stable(self.finding.get("evidences")),
        }
        text = json.dumps(material, sort_keys=True, default=str).encode()
        return hashlib.sha256(text).hexdigest()[:32]


# Finding fields a vendor changes while the detection stays the same.
VOLATILE_FIELDS = frozenset(
    {"modified_time", "last_seen_time", "src_url", "verdict", "risk_level", "status", "status_id"}
)


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE_FIELDS}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def iso(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601 with milliseconds, so string order is time order."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# What vendors send (`Z`, no whitespace, only the fraction to trim) is parsed as it comes:
# normalizers parse three or four timestamps per alert, and the general path is slower.
_UTC_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z", re.ASCII)
# Python takes at most 6 fractional digits; Microsoft sends 7.
_MAX_FRACTION = 6
_UTC_STAMP_CHARS = len("2025-01-01T00:00:00.Z") + _MAX_FRACTION


def parse_time(value: Any) -> datetime:
    """Parse a vendor ISO-8601 timestamp (up to 7 fractional digits, `Z` or offset) to aware UTC."""
    if not isinstance(value, str) or not value:
        raise MalformedRecordError(f"expected an ISO-8601 timestamp, got {type(value).__name__}")
    try:
        if _UTC_STAMP.fullmatch(value):
            fits = len(value) <= _UTC_STAMP_CHARS
            return datetime.fromisoformat(value if fits else value[: _UTC_STAMP_CHARS - 1] + "Z")
        return _parse_any_time(value)
    except (ValueError, OverflowError) as exc:  # year 1 with a positive offset overflows
        raise MalformedRecordError(f"unparseable timestamp {value[:40]!r}") from exc


def _parse_any_time(value: str) -> datetime:
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, sep, rest = text.partition(".")
    if sep:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, _MAX_FRACTION)]}{rest[digits:]}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def pack_raw(payload: dict[str, Any]) -> bytes:
    """Compress a vendor payload for storage, cutting it to RAW_LIMIT_BYTES first."""
    data = json.dumps(payload, separators=(",", ":"), default=str).encode()
    if len(data) > RAW_LIMIT_BYTES:
        data = data[:RAW_LIMIT_BYTES]
    return gzip.compress(data, compresslevel=6, mtime=0)


def unpack_raw(blob: bytes) -> str:
    """The stored payload text (possibly cut at RAW_LIMIT_BYTES, so not always valid JSON)."""
    return gzip.decompress(blob).decode("utf-8", errors="replace")
