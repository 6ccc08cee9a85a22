"""MDE API alert -> normalized Event (OCSF Detection Finding subset)."""

from __future__ import annotations

from typing import Any

from needle.model.event import DeviceHints, Event, MalformedRecordError, parse_time
from needle.sources.ocsf import detection_finding

CONSOLE = "https://security.microsoft.com/alerts/"

# MDE severity enum -> OCSF severity_id. MDE has no Critical; UnSpecified is OCSF Unknown.
SEVERITY = {"unspecified": 0, "informational": 1, "low": 2, "medium": 3, "high": 4}
STATUS = {"new": "new", "inprogress": "in_progress", "resolved": "resolved", "unknown": "new"}


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
    tactics = [category] if isinstance(category, str) and category else []
    techniques = _techniques(alert.get("mitreTechniques"))
    hostname = alert.get("computerDnsName") or None
    machine_id = alert.get("machineId") or None
    if not hostname and not machine_id:
        raise MalformedRecordError("alert names no device (machineId and computerDnsName are empty)")
    evidence = alert.get("evidence") or []
    if not isinstance(evidence, list):
        evidence = [evidence]  # some exports carry one evidence object per line
    rows = [row for row in evidence if isinstance(row, dict)]
    user = _user(alert.get("relatedUser"), rows)
    process_row = next((r for r in rows if r.get("entityType") == "Process"), None)
    console_url = CONSOLE + alert_id
    finding = detection_finding(
        uid=alert_id,
        title=title,
        description=alert.get("description"),
        severity_id=severity_id,
        status=status,
        created=created,
        first_seen=first,
        last_seen=last,
        modified=updated,
        analytic={"uid": alert.get("detectorId"), "name": alert.get("detectionSource"), "type_id": 1},
        tactics=tactics,
        techniques=techniques,
        device={"hostname": hostname, "uid": machine_id, "groups": _groups(alert)},
        evidences=[_evidence(row) for row in rows],
        vendor="Microsoft",
        product="Defender for Endpoint",
        console_url=console_url,
        verdict=alert.get("classification") or None,
        unmapped={
            "incidentId": alert.get("incidentId"),
            "determination": alert.get("determination"),
            "threatFamilyName": alert.get("threatFamilyName"),
            "investigationState": alert.get("investigationState"),
            "assignedTo": alert.get("assignedTo"),
        },
    )
    return Event(
        source="mde",
        vendor_id=alert_id,
        kind="edr_alert",
        time=first or created,
        updated_at=updated,
        title=title,
        severity_id=severity_id,
        status=status,
        tactics=tuple(tactics),
        techniques=tuple(techniques),
        device=DeviceHints(source="mde", device_id=machine_id, hostname=hostname),
        user=user,
        process=(process_row or {}).get("fileName") or None,
        console_url=console_url,
        finding=finding,
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


def _groups(alert: dict[str, Any]) -> list[dict[str, str]]:
    group = alert.get("rbacGroupName")
    return [{"name": group}] if group else []


def _join(directory: Any, name: Any) -> str | None:
    if not name:
        return directory or None
    return f"{str(directory).rstrip(chr(92))}\\{name}" if directory else str(name)


def _evidence(row: dict[str, Any]) -> dict[str, Any]:
    """One flat MDE evidence row -> one OCSF evidence object."""
    kind = row.get("entityType")
    hashes = [
        {"algorithm_id": algo_id, "algorithm": algo, "value": row[key]}
        for key, algo, algo_id in (("sha1", "SHA-1", 2), ("sha256", "SHA-256", 3))
        if row.get(key)
    ]
    file = {
        "name": row.get("fileName"),
        "path": _join(row.get("filePath"), row.get("fileName")),
        "hashes": hashes,
    }
    if kind == "Process":
        return {
            "process": {
                "name": row.get("fileName"),
                "pid": row.get("processId"),
                "cmd_line": row.get("processCommandLine"),
                "created_time_dt": row.get("processCreationTime"),
                "file": file,
                "parent_process": {
                    "name": row.get("parentProcessFileName"),
                    "pid": row.get("parentProcessId"),
                    "file": {
                        "name": row.get("parentProcessFileName"),
                        "path": _join(row.get("parentProcessFilePath"), row.get("parentProcessFileName")),
                    },
                },
            }
        }
    if kind == "File":
        return {"file": file}
    if kind == "User":
        return {
            "user": {
                "name": row.get("accountName"),
                "domain": row.get("domainName"),
                "uid": row.get("userSid"),
                "email_addr": row.get("userPrincipalName"),
            }
        }
    if kind == "Ip":
        return {"dst_endpoint": {"ip": row.get("ipAddress")}}
    if kind == "Url":
        return {"url": {"url_string": row.get("url")}}
    return {"data": {k: v for k, v in row.items() if v is not None}}
