"""CrowdStrike Falcon Alerts v2 alert -> normalized Event (OCSF Detection Finding subset).

Severity. `severity_name` wins when it is one of the five names Falcon shows; otherwise the
0–100 `severity` score is banded. The bands are an assumption (CrowdStrike documents neither the
range nor the names; observed pairs 50/Medium, 70/High, 79/High fit them):

    severity_name    severity (int)    OCSF severity_id
    Informational    1–19              1 Informational
    Low              20–39             2 Low
    Medium           40–59             3 Medium
    High             60–79             4 High
    Critical         80–100            5 Critical
    (other/absent)   0, absent, junk   0 Unknown

Status: new -> new, in_progress -> in_progress, reopened -> new (open again, awaiting review),
closed -> resolved, ignored -> suppressed; anything else -> new. The raw value stays in `unmapped`.

Entity. An alert with a `device` object (or, failing that, an `agent_id` on a non-identity
alert) is placed on that device: `device.device_id` (the AID, also the containment key),
`device.hostname`, and `local_ip` as the IP lease (`external_ip` is a shared NAT address).
Identity-protection alerts (`product`
"idp" or data domain "Identity") carry no `device`: they are about an account, so the entity is
the user, given as a hostname-less device hint `device_id="user:<user_name lower-cased>"` (the
resolver then keys it `device:crowdstrike:user:<name>`); the source/target endpoints stay in the
finding's evidences. A record with no device identity and no user is malformed.

Tactics and techniques: MITRE ids from `tactic_id`/`technique_id` and every `mitre_attack[]`
entry; CrowdStrike-specific ones (`CSTA0004` "Machine Learning", `CST0007`) are not ATT&CK and
are kept in `unmapped` only.
"""

from __future__ import annotations

import re
from typing import Any

from needle.model.attack import is_technique_id, tactic
from needle.model.event import DeviceHints, Event, MalformedRecordError, parse_time
from needle.sources.ocsf import MD5, SHA1, SHA256, clean, edr_alert, fingerprint, obj, objs, optional_time

SOURCE = "crowdstrike"
VENDOR = "CrowdStrike"

SEVERITY_NAMES = {"informational": 1, "info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
# (lowest score of the band, OCSF severity_id), highest band first.
SEVERITY_BANDS = ((80, 5), (60, 4), (40, 3), (20, 2), (1, 1))
STATUS = {
    "new": "new",
    "in_progress": "in_progress",
    "reopened": "new",
    "closed": "resolved",
    "ignored": "suppressed",
}

_TACTIC_ID = re.compile(r"TA\d{4}")
_ZERO_HASH = re.compile(r"0+")
_IDENTITY_PRODUCTS = frozenset({"idp"})


def normalize(alert: dict[str, Any]) -> Event:
    """Normalize one Alerts v2 object (`POST /alerts/entities/alerts/v2` resource).

    Raises MalformedRecordError when the record cannot be an alert: no `composite_id`, no valid
    `updated_timestamp`, or neither a device nor a user to place it on.
    """
    if not isinstance(alert, dict):
        raise MalformedRecordError("alert is not a JSON object")
    composite_id = alert.get("composite_id")
    if not isinstance(composite_id, str) or not composite_id.strip():
        raise MalformedRecordError("missing or empty 'composite_id'")
    updated = parse_time(alert.get("updated_timestamp"))
    created = optional_time(alert.get("created_timestamp")) or updated
    detected = optional_time(alert.get("timestamp"))

    title = _text(alert.get("display_name")) or _text(alert.get("name")) or _fallback_title(alert)
    severity_id = severity_of(alert)
    raw_status = _text(alert.get("status"))
    status = STATUS.get(raw_status.lower(), "new") if raw_status else "new"
    tactics, techniques = _attack(alert)

    user_name = _text(alert.get("user_name"))
    domain = _text(alert.get("logon_domain"))
    user = f"{domain}\\{user_name}" if user_name and domain else (user_name or None)

    device = alert.get("device")
    device_hints, finding_device = _device(alert, device if isinstance(device, dict) else None, user_name)

    filename = _text(alert.get("filename"))
    filepath = _text(alert.get("filepath"))
    process = filename or (_basename(filepath) if filepath else "")
    console_url = _text(alert.get("falcon_host_link")) or None
    sources = alert.get("source_products")
    product = (
        sources[0] if isinstance(sources, list) and sources and isinstance(sources[0], str) else "Falcon"
    )
    pattern_id = alert.get("pattern_id")

    return edr_alert(
        source=SOURCE,
        uid=composite_id,
        title=title,
        description=alert.get("description"),
        severity_id=severity_id,
        status=status,
        created=created,
        first_seen=detected,
        last_seen=None,
        modified=updated,
        analytic=obj(
            {
                "uid": None if pattern_id is None else clean(str(pattern_id)),
                "name": clean(alert.get("name")),
                "type_id": 1,
            }
        ),
        tactics=tactics,
        techniques=techniques,
        hints=device_hints,
        device=finding_device,
        evidences=_evidences(alert, filename, filepath, user_name, domain),
        vendor=VENDOR,
        product=product,
        console_url=console_url,
        verdict=_text(alert.get("resolution")) or None,
        unmapped=_unmapped(alert, raw_status),
        user=user,
        process=process or None,
        raw=alert,
    )


def _unmapped(alert: dict[str, Any], status: str) -> dict[str, Any] | None:
    # Kept small on purpose (the whole payload is in `raw`): what triage and rules read.
    unmapped = {
        "id": clean(alert.get("id")),
        "aggregate_id": clean(alert.get("aggregate_id") or None),
        "product": clean(alert.get("product")),
        "type": clean(alert.get("type")),
        "scenario": clean(alert.get("scenario")),
        "confidence": clean(alert.get("confidence")),
        "severity": clean(alert.get("severity")),
        "severity_name": clean(alert.get("severity_name")),
        "status": clean(status or None),
        "tactic": clean(alert.get("tactic")),
        "tactic_id": clean(alert.get("tactic_id")),
        "technique": clean(alert.get("technique")),
        "technique_id": clean(alert.get("technique_id")),
    }
    return obj(unmapped)


def severity_of(alert: dict[str, Any]) -> int:
    """OCSF severity_id from `severity_name`, else from the banded `severity` score."""
    name = alert.get("severity_name")
    if isinstance(name, str):
        found = SEVERITY_NAMES.get(name.strip().lower())
        if found is not None:
            return found
    score: Any = alert.get("severity")
    if isinstance(score, str):
        try:
            score = float(score)
        except ValueError:
            return 0
    if isinstance(score, int | float) and not isinstance(score, bool):
        for floor, severity_id in SEVERITY_BANDS:
            if score >= floor:
                return severity_id
    return 0


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _fallback_title(alert: dict[str, Any]) -> str:
    kind = _text(alert.get("type")) or _text(alert.get("product"))
    return f"CrowdStrike {kind} alert" if kind else "CrowdStrike alert"


def _basename(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1]


def _attack(alert: dict[str, Any]) -> tuple[list[str], list[str]]:
    tactics: list[str] = []
    techniques: list[str] = []
    _add_tactic(tactics, alert.get("tactic_id"), alert.get("tactic"))
    _add_technique(techniques, alert.get("technique_id"))
    entries = alert.get("mitre_attack")
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict):
                _add_tactic(tactics, entry.get("tactic_id"), entry.get("tactic"))
                _add_technique(techniques, entry.get("technique_id"))
    return tactics, techniques


def _add_tactic(out: list[str], tactic_id: Any, label: Any) -> None:
    uid: str | None = None
    if isinstance(tactic_id, str) and _TACTIC_ID.fullmatch(tactic_id):
        uid = tactic_id
    elif isinstance(label, str) and label and not (isinstance(tactic_id, str) and tactic_id.startswith("CS")):
        # No ATT&CK id, but the label may still name an ATT&CK tactic.
        resolved = tactic(label)
        uid = resolved[0] if resolved else None
    if uid and uid not in out:
        out.append(uid)


def _add_technique(out: list[str], technique_id: Any) -> None:
    if isinstance(technique_id, str) and technique_id not in out and is_technique_id(technique_id):
        out.append(technique_id)


def _is_identity(alert: dict[str, Any]) -> bool:
    if alert.get("product") in _IDENTITY_PRODUCTS:
        return True
    domains = alert.get("data_domains")
    return isinstance(domains, list) and "Identity" in domains


def _device(
    alert: dict[str, Any], device: dict[str, Any] | None, user_name: str
) -> tuple[DeviceHints, dict[str, Any] | None]:
    """The device hint for entity resolution and the OCSF `device` of the finding."""
    if device is not None:
        device_id = _text(device.get("device_id")) or _text(alert.get("agent_id"))
        hostname = _text(device.get("hostname"))
        if device_id or hostname:
            # Only the host's own address makes an IP lease: `external_ip` is the office NAT that
            # many hosts share (kept in the finding, never used to place network detections).
            local_ip = device.get("local_ip")
            ips = (local_ip,) if isinstance(local_ip, str) and local_ip else ()
            os = {"name": clean(device.get("os_version")), "type": clean(device.get("platform_name"))}
            finding_device = {
                "uid": clean(device_id or None),
                "hostname": clean(hostname or None),
                "ip": clean(device.get("local_ip") or None),
                "mac": clean(device.get("mac_address") or None),
                "domain": clean(device.get("machine_domain") or None),
                "os": obj(os),
                "external_ip": clean(device.get("external_ip") or None),
            }
            hints = DeviceHints(
                source=SOURCE, device_id=device_id or None, hostname=hostname or None, ips=ips
            )
            return hints, obj(finding_device)
    agent_id = _text(alert.get("agent_id"))
    if agent_id and not _is_identity(alert):
        return DeviceHints(source=SOURCE, device_id=agent_id, hostname=None), {"uid": clean(agent_id)}
    account = user_name or _text(alert.get("source_account_upn")) or _text(alert.get("source_account_name"))
    if not account:
        raise MalformedRecordError("alert names neither a device nor a user")
    user_key = f"user:{account.lower()}"
    return DeviceHints(source=SOURCE, device_id=user_key, hostname=None), None


def _hashes(md5: Any, sha1: Any, sha256: Any) -> list[dict[str, Any]] | None:
    found = [
        fingerprint(algorithm, value)
        for value, algorithm in ((md5, MD5), (sha1, SHA1), (sha256, SHA256))
        # Falcon fills `sha1` with zeros when it did not compute it.
        if isinstance(value, str) and value and not _ZERO_HASH.fullmatch(value)
    ]
    return found or None


def _pid(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _evidences(
    alert: dict[str, Any], filename: str, filepath: str, user_name: str, domain: str
) -> list[dict[str, Any]] | None:
    if filename or filepath or alert.get("cmdline"):
        actor = obj({"process": _process(alert, filename, filepath, user_name, domain)})
    elif user_name:
        actor = obj({"user": _account(alert, user_name, domain)})
    else:
        actor = None
    return objs([actor, _source_endpoint(alert), _target_endpoint(alert)])


def _process(
    alert: dict[str, Any], filename: str, filepath: str, user_name: str, domain: str
) -> dict[str, Any] | None:
    file = {
        "name": clean(filename or None),
        "path": clean(filepath or None),
        "hashes": _hashes(alert.get("md5"), alert.get("sha1"), alert.get("sha256")),
    }
    user = {
        "name": clean(user_name or None),
        "uid": clean(alert.get("user_id")),
        "domain": clean(domain or None),
    }
    process = {
        "name": clean(filename or None),
        "pid": _pid(alert.get("local_process_id")),
        "uid": clean(alert.get("triggering_process_graph_id")),
        "cmd_line": clean(alert.get("cmdline")),
        "file": obj(file),
        "user": obj(user),
        "parent_process": _parent_process(alert.get("parent_details")),
    }
    return obj(process)


def _parent_process(parent: Any) -> dict[str, Any] | None:
    if not isinstance(parent, dict):
        return None
    file = {
        "name": clean(parent.get("filename")),
        "path": clean(parent.get("filepath")),
        "hashes": _hashes(parent.get("md5"), None, parent.get("sha256")),
    }
    process = {
        "name": clean(parent.get("filename")),
        "pid": _pid(parent.get("local_process_id")),
        "uid": clean(parent.get("process_graph_id")),
        "cmd_line": clean(parent.get("cmdline")),
        "file": obj(file),
        "user": obj({"name": clean(parent.get("user_name")), "uid": clean(parent.get("user_id"))}),
    }
    return obj(process)


def _account(alert: dict[str, Any], user_name: str, domain: str) -> dict[str, Any] | None:
    account = {
        "name": clean(user_name),
        "uid": clean(alert.get("source_account_object_sid") or alert.get("user_id")),
        "domain": clean(alert.get("source_account_domain") or domain or None),
        "email_addr": clean(alert.get("source_account_upn")),
    }
    return obj(account)


def _source_endpoint(alert: dict[str, Any]) -> dict[str, Any] | None:
    host, ip = alert.get("source_endpoint_host_name"), alert.get("source_endpoint_ip_address")
    if not host and not ip:
        return None
    endpoint = {
        "hostname": clean(host),
        "ip": clean(ip),
        "uid": clean(alert.get("source_endpoint_sensor_id")),
    }
    return obj({"src_endpoint": obj(endpoint)})


def _target_endpoint(alert: dict[str, Any]) -> dict[str, Any] | None:
    host = alert.get("target_endpoint_host_name")
    if not host:
        return None
    endpoint = {"hostname": clean(host), "uid": clean(alert.get("target_endpoint_sensor_id"))}
    return obj({"dst_endpoint": obj(endpoint)})
