"""MDE API alert -> normalized Event (OCSF Detection Finding subset)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from needle.model.event import DeviceHints, Event, MalformedRecordError, parse_time
from needle.sources.ocsf import (
    SHA1,
    SHA256,
    Algorithms,
    Fields,
    clean,
    edr_alert,
    hashes,
    member,
    obj,
    objs,
    pick,
)

CONSOLE = "https://security.microsoft.com/alerts/"

# MDE severity enum -> OCSF severity_id. MDE has no Critical; UnSpecified is OCSF Unknown.
SEVERITY = {"unspecified": 0, "informational": 1, "low": 2, "medium": 3, "high": 4}
STATUS = {"new": "new", "inprogress": "in_progress", "resolved": "resolved", "unknown": "new"}
HASHES: Algorithms = (("sha1", SHA1), ("sha256", SHA256))
UNMAPPED: Fields = tuple(
    (key, key)
    for key in ("incidentId", "determination", "threatFamilyName", "investigationState", "assignedTo")
)
USER: Fields = (
    ("name", "accountName"),
    ("domain", "domainName"),
    ("uid", "userSid"),
    ("email_addr", "userPrincipalName"),
)


def normalize(alert: dict[str, Any]) -> Event:
    """Normalize one `/api/alerts` object (with or without `$expand=evidence`).

    Raises MalformedRecordError when the record lacks what an alert needs (id, title, times).
    """
    if not isinstance(alert, dict):
        raise MalformedRecordError("alert is not a JSON object")
    alert_id = _text(alert, "id", required=True)
    title = _text(alert, "title", required=True)
    updated = parse_time(alert.get("lastUpdateTime") or alert.get("alertCreationTime"))
    created = parse_time(alert.get("alertCreationTime") or alert.get("lastUpdateTime"))
    first = parse_time(alert["firstEventTime"]) if alert.get("firstEventTime") else None
    last = parse_time(alert["lastEventTime"]) if alert.get("lastEventTime") else None
    severity_label = str(alert.get("severity") or "UnSpecified")
    severity_id = SEVERITY.get(severity_label.lower(), 99)
    status = STATUS.get(str(alert.get("status") or "unknown").lower(), "new")
    category = alert.get("category")
    hostname = alert.get("computerDnsName") or None
    machine_id = alert.get("machineId") or None
    if not hostname and not machine_id:
        raise MalformedRecordError("alert names no device (machineId and computerDnsName are empty)")
    evidence = alert.get("evidence") or []
    if not isinstance(evidence, list):
        evidence = [evidence]  # some exports carry one evidence object per line
    rows = [row for row in evidence if isinstance(row, dict)]
    return edr_alert(
        source="mde",
        uid=alert_id,
        title=title,
        description=alert.get("description"),
        severity_id=severity_id,
        status=status,
        created=created,
        first_seen=first,
        last_seen=last,
        modified=updated,
        analytic=obj(
            {"uid": clean(alert.get("detectorId")), "name": clean(alert.get("detectionSource")), "type_id": 1}
        ),
        tactics=[category] if isinstance(category, str) and category else [],
        techniques=_techniques(alert.get("mitreTechniques")),
        hints=DeviceHints(source="mde", device_id=machine_id, hostname=hostname),
        device=obj({"hostname": clean(hostname), "uid": clean(machine_id), "groups": _groups(alert)}),
        evidences=objs([_evidence(row) for row in rows]),
        vendor="Microsoft",
        product="Defender for Endpoint",
        console_url=CONSOLE + alert_id,
        verdict=alert.get("classification") or None,
        unmapped=pick(alert, UNMAPPED),
        user=_user(alert.get("relatedUser"), rows),
        process=_process_name(rows),
        raw=alert,
    )


def _text(alert: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = alert.get(key)
    if isinstance(value, str) and value.strip():
        return value
    if required:
        raise MalformedRecordError(f"missing or empty {key!r}")
    return ""


def _techniques(value: Any) -> list[str]:
    # The docs say String, real payloads carry a list.
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str) and v]


def _user(related: Any, rows: list[dict[str, Any]]) -> str | None:
    if isinstance(related, dict) and related.get("userName"):
        domain = related.get("domainName")
        return f"{domain}\\{related['userName']}" if domain else str(related["userName"])
    if isinstance(related, str) and related:
        return related
    for row in rows:
        if row.get("entityType") == "User" and row.get("accountName"):
            domain = row.get("domainName")
            return f"{domain}\\{row['accountName']}" if domain else str(row["accountName"])
    return None


def _process_name(rows: list[dict[str, Any]]) -> str | None:
    for row in rows:
        if row.get("entityType") == "Process":
            return row.get("fileName") or None
    return None


def _groups(alert: dict[str, Any]) -> list[dict[str, Any]] | None:
    group = alert.get("rbacGroupName")
    return objs([member("name", clean(group))]) if group else None


def _join(directory: Any, name: Any) -> str | None:
    if not name:
        return directory or None
    return f"{str(directory).rstrip(chr(92))}\\{name}" if directory else str(name)


def _evidence(row: dict[str, Any]) -> dict[str, Any] | None:
    """One flat MDE evidence row -> one OCSF evidence object."""
    kind = row.get("entityType")
    name, build = _EVIDENCE.get(kind, _OTHER) if isinstance(kind, str) else _OTHER
    return member(name, build(row))


def _process(row: dict[str, Any]) -> dict[str, Any] | None:
    parent_name = row.get("parentProcessFileName")
    parent_file = {
        "name": clean(parent_name),
        "path": clean(_join(row.get("parentProcessFilePath"), parent_name)),
    }
    parent = {"name": clean(parent_name), "pid": clean(row.get("parentProcessId")), "file": obj(parent_file)}
    process = {
        "name": clean(row.get("fileName")),
        "pid": clean(row.get("processId")),
        "cmd_line": clean(row.get("processCommandLine")),
        "created_time_dt": clean(row.get("processCreationTime")),
        "file": _file(row),
        "parent_process": obj(parent),
    }
    return obj(process)


def _file(row: dict[str, Any]) -> dict[str, Any] | None:
    name = row.get("fileName")
    path = _join(row.get("filePath"), name)
    return obj({"name": clean(name), "path": clean(path), "hashes": hashes(row, HASHES)})


def _user_account(row: dict[str, Any]) -> dict[str, Any] | None:
    return pick(row, USER)


def _endpoint(row: dict[str, Any]) -> dict[str, Any] | None:
    return member("ip", clean(row.get("ipAddress")))


def _url(row: dict[str, Any]) -> dict[str, Any] | None:
    return member("url_string", clean(row.get("url")))


Builder = Callable[[dict[str, Any]], Any]
# MDE entityType -> the OCSF evidence member and its builder; other types keep their fields.
_EVIDENCE: dict[str, tuple[str, Builder]] = {
    "Process": ("process", _process),
    "File": ("file", _file),
    "User": ("user", _user_account),
    "Ip": ("dst_endpoint", _endpoint),
    "Url": ("url", _url),
}
_OTHER: tuple[str, Builder] = ("data", clean)
