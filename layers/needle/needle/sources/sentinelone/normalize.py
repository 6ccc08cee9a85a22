"""SentinelOne `/web/api/v2.1/threats` object -> normalized Event (OCSF Detection Finding subset).

SentinelOne threats carry no severity. `severity_id` is derived, first rule that applies wins:

    ==============================================  =========================================
    threat                                          OCSF severity_id
    ==============================================  =========================================
    threatInfo.mitigationStatus = marked_as_benign  1 Informational (the console said benign)
    classification PUA / Adware                     min(confidence level below, 2 Low)
    high-impact classification (Ransomware,         malicious: 5 Critical while not mitigated,
    Backdoor, Rootkit, Infostealer, Exploit, Worm,    4 High once mitigated;
    Keylogger, Cryptominer)                         suspicious: 4 High
    otherwise, by threatInfo.confidenceLevel        malicious 4 High, suspicious 3 Medium,
                                                    n/a 2 Low, missing or unknown 0 Unknown
    ==============================================  =========================================

Status: `incidentStatus` unresolved -> new, in_progress -> in_progress, resolved -> resolved;
an unresolved or in-progress threat whose `mitigationStatus` is marked_as_benign -> suppressed.

A record is malformed (MalformedRecordError) when it has no `id`, no parseable update time
(`threatInfo.updatedAt`, or the API 2.0 top-level `updatedAt`), or names no device at all
(agentId, agentUuid and agentComputerName all absent): entities are devices, so a threat with
only a user cannot be placed on a timeline. The literal "REDACTED" (sanitised exports) counts
as absent for identities, so redacted records never merge into one shared device.

Device IPs for entity resolution come from `networkInterfaces[].inet[]/inet6[]` and the
detection-time `agentIpV4`/`agentIpV6` (comma-separated strings); loopback, link-local and
invalid values are dropped. `externalIp` is kept in `unmapped` only: it is a NAT address that
many devices share, so it must not identify one.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from needle.model.attack import is_technique_id
from needle.model.event import DeviceHints, Event, MalformedRecordError, parse_time
from needle.sources.ocsf import detection_finding

SOURCE = "sentinelone"
PLACEHOLDERS = frozenset({"redacted", "n/a", "none", "null", "unknown"})
MAX_IPS = 32

CONFIDENCE = {"malicious": 4, "suspicious": 3, "n/a": 2}
LOW_IMPACT = frozenset({"pua", "adware"})
HIGH_IMPACT = frozenset(
    {"ransomware", "backdoor", "rootkit", "infostealer", "exploit", "worm", "keylogger", "cryptominer"}
)
UNMITIGATED = frozenset({"not_mitigated", "being_mitigated", "partially_mitigated", "mitigation_failed"})
STATUS = {"unresolved": "new", "in_progress": "in_progress", "resolved": "resolved"}
VERDICT = {
    "true_positive": "True Positive",
    "false_positive": "False Positive",
    "suspicious": "Suspicious",
    "undefined": None,
}
OS_TYPE_ID = {"windows": 100, "windows_legacy": 100, "linux": 200, "macos": 300}
ANALYTIC_TYPE = {"dynamic": (2, "Behavioral"), "static": (99, "Other")}
HASHES = (("md5", "MD5", 1), ("sha1", "SHA-1", 2), ("sha256", "SHA-256", 3))

# `techniques[].link` holds the id when a console names a technique by title instead.
_LINK_TECHNIQUE = re.compile(r"/techniques/(T\d{4})(?:/(\d{3}))?", re.IGNORECASE)


def normalize(raw: dict[str, Any], console_url: str) -> Event:
    """Normalize one threat from `GET /web/api/v2.1/threats` (`data[]` element).

    `console_url` is the management console (e.g. `https://usea1-acme.sentinelone.net`); the
    deep link is `<console>/incidents/threats/<id>/overview`.
    Raises MalformedRecordError for a record that cannot be an alert (see the module doc).
    """
    if not isinstance(raw, dict):
        raise MalformedRecordError("threat is not a JSON object")
    threat_id = _identity(raw.get("id"))
    if threat_id is None:
        raise MalformedRecordError("threat has no 'id'")
    # API 2.0 threats kept these groups flat at the top level; read them from there instead.
    info = _object(raw.get("threatInfo")) or raw
    realtime = _object(raw.get("agentRealtimeInfo")) or raw
    detection = _object(raw.get("agentDetectionInfo"))

    updated = parse_time(info.get("updatedAt") or raw.get("updatedAt"))
    created = _time(info.get("createdAt")) or updated
    identified = _time(info.get("identifiedAt"))

    agent_id = _identity(realtime.get("agentId"))
    agent_uuid = _identity(realtime.get("agentUuid")) or _identity(detection.get("agentUuid"))
    hostname = _identity(realtime.get("agentComputerName"))
    device_id = agent_id or agent_uuid
    if device_id is None and hostname is None:
        raise MalformedRecordError("threat names no device (agentId, agentUuid and agentComputerName empty)")

    classification = _lower(info.get("classification"))
    confidence = _lower(info.get("confidenceLevel"))
    mitigation = _lower(info.get("mitigationStatus"))
    severity_id = severity_of(confidence, classification, mitigation)
    status = status_of(info, mitigation)
    verdict_key = _lower(info.get("analystVerdict")) or "undefined"
    verdict = VERDICT.get(verdict_key, _text(info.get("analystVerdict")))

    file_path = _text(info.get("filePath"))
    title = _text(info.get("threatName")) or _basename(file_path) or _text(info.get("classification"))
    title = title or "SentinelOne threat"
    tactics, techniques, behaviours = _indicators(raw.get("indicators"))
    ips = _device_ips(realtime.get("networkInterfaces"), detection)
    process_user = _identity(info.get("processUser"))
    logged_in = _identity(detection.get("agentLastLoggedInUserName"))
    originator = _text(info.get("originatorProcess"))
    console = f"{_console_prefix(console_url)}/incidents/threats/{threat_id}/overview"
    engines = _engines(info)

    finding = detection_finding(
        uid=threat_id,
        title=title,
        description="; ".join(behaviours[:5]) or None,
        severity_id=severity_id,
        status=status,
        created=created,
        first_seen=identified,
        last_seen=None,
        modified=updated,
        analytic=_analytic(info, engines),
        tactics=tactics,
        techniques=techniques,
        device=_device(realtime, detection, device_id, agent_uuid, hostname, ips),
        evidences=_evidences(info, file_path, originator, process_user),
        vendor="SentinelOne",
        product="Singularity Endpoint",
        console_url=console,
        verdict=verdict,
        unmapped={
            "threatId": info.get("threatId"),
            "classification": info.get("classification"),
            "classificationSource": info.get("classificationSource"),
            "confidenceLevel": info.get("confidenceLevel"),
            "analystVerdict": info.get("analystVerdict"),
            "incidentStatus": info.get("incidentStatus"),
            "mitigationStatus": info.get("mitigationStatus"),
            "mitigationActions": _mitigation_actions(raw.get("mitigationStatus")),
            "detectionType": info.get("detectionType"),
            "engines": engines,
            "initiatedBy": info.get("initiatedBy"),
            "storyline": info.get("storyline"),
            "collectionId": info.get("collectionId"),
            "cloudFilesHashVerdict": info.get("cloudFilesHashVerdict"),
            "externalIp": _text(detection.get("externalIp")),
            "agentNetworkStatus": realtime.get("agentNetworkStatus"),
            "agentDecommissioned": _decommissioned(realtime),
            "lastLoggedInUser": logged_in,
            "site": _text(realtime.get("siteName")),
            "account": _text(realtime.get("accountName")),
        },
    )
    return Event(
        source=SOURCE,
        vendor_id=threat_id,
        kind="edr_alert",
        time=identified or created,
        updated_at=updated,
        title=title,
        severity_id=severity_id,
        status=status,
        tactics=tuple(tactics),
        techniques=tuple(techniques),
        device=DeviceHints(source=SOURCE, device_id=device_id, hostname=hostname, ips=ips),
        user=process_user or logged_in,
        process=originator,
        console_url=console,
        finding=finding,
        raw=raw,
    )


def severity_of(confidence: str | None, classification: str | None, mitigation: str | None) -> int:
    """OCSF severity_id for a threat, per the table in the module docstring.

    >>> severity_of("malicious", "ransomware", "not_mitigated")
    5
    """
    if mitigation == "marked_as_benign":
        return 1
    base = CONFIDENCE.get(confidence or "", 0)
    if classification in LOW_IMPACT:
        return min(base, 2)
    if classification in HIGH_IMPACT:
        if confidence == "malicious":
            return 5 if mitigation in UNMITIGATED else 4
        if confidence == "suspicious":
            return 4
    return base


def status_of(info: dict[str, Any], mitigation: str | None) -> str:
    """Needle status from `incidentStatus` (API 2.0: the `resolved` flag) and `mitigationStatus`."""
    incident = _lower(info.get("incidentStatus"))
    if incident is None and isinstance(info.get("resolved"), bool):
        incident = "resolved" if info["resolved"] else "unresolved"
    status = STATUS.get(incident or "", "new")
    if status != "resolved" and mitigation == "marked_as_benign":
        return "suppressed"
    return status


def cursor_of(raw: dict[str, Any]) -> datetime:
    """The vendor update time that drives incremental polling (`threatInfo.updatedAt`)."""
    info = raw.get("threatInfo") if isinstance(raw, dict) else None
    value = info.get("updatedAt") if isinstance(info, dict) else None
    return parse_time(value or (raw.get("updatedAt") if isinstance(raw, dict) else None))


# -- helpers ---------------------------------------------------------------------------------


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


def _identity(value: Any) -> str | None:
    """An id, host or user name; sanitised placeholders are no identity at all."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = _text(value)
    if text is None or text.lower() in PLACEHOLDERS:
        return None
    return text


def _lower(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except MalformedRecordError:
        # Only the update time is load-bearing; a bad secondary time is dropped, not fatal.
        return None


def _basename(path: str | None) -> str | None:
    if not path:
        return None
    return path.replace("\\", "/").rsplit("/", 1)[-1] or None


@lru_cache(maxsize=64)
def _console_prefix(console_url: str) -> str:
    text = console_url.strip()
    split = urlsplit(text if "//" in text else f"https://{text}")
    return f"{split.scheme or 'https'}://{split.netloc or split.path.strip('/')}"


def _indicators(value: Any) -> tuple[list[str], list[str], list[str]]:
    """Tactic names, technique ids and behaviour descriptions, each de-duplicated in order."""
    tactics: dict[str, None] = {}
    techniques: dict[str, None] = {}
    behaviours: dict[str, None] = {}
    if not isinstance(value, list):
        return [], [], []
    for indicator in value:
        if not isinstance(indicator, dict):
            continue
        description = _text(indicator.get("description"))
        if description:
            behaviours[description] = None
        entries = indicator.get("tactics")
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            name = _text(entry.get("name"))
            if name:
                tactics[name] = None
            found = entry.get("techniques")
            if not isinstance(found, list):
                continue
            for technique in found:
                uid = _technique_id(technique) if isinstance(technique, dict) else None
                if uid:
                    techniques[uid] = None
    return list(tactics), list(techniques), list(behaviours)


def _technique_id(technique: dict[str, Any]) -> str | None:
    name = _text(technique.get("name"))
    if name and is_technique_id(name.upper()):
        return name.upper()
    link = technique.get("link")
    match = _LINK_TECHNIQUE.search(link) if isinstance(link, str) else None
    if match is None:
        return None
    base, sub = match.group(1).upper(), match.group(2)
    return f"{base}.{sub}" if sub else base


@lru_cache(maxsize=8192)
def _usable_ip(text: str) -> str | None:
    """The canonical form of an address that can identify one device, else None."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast:
        return None
    return address.compressed


def _device_ips(interfaces: Any, detection: dict[str, Any]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    candidates: list[Any] = []
    for key in ("agentIpV4", "agentIpV6"):
        value = detection.get(key)
        if isinstance(value, str) and value:
            # Multi-homed agents report every address in one comma-separated string.
            candidates.extend(value.split(","))
    if isinstance(interfaces, list):
        for interface in interfaces:
            if isinstance(interface, dict):
                for key in ("inet", "inet6"):
                    values = interface.get(key)
                    if isinstance(values, list):
                        candidates.extend(values)
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            ip = _usable_ip(candidate)
            if ip is not None:
                found[ip] = None
                if len(found) >= MAX_IPS:
                    break
    return tuple(found)


def _has_usable_ip(interface: dict[str, Any]) -> bool:
    for key in ("inet", "inet6"):
        values = interface.get(key)
        if isinstance(values, list) and any(isinstance(v, str) and _usable_ip(v) for v in values):
            return True
    return False


def _device(
    realtime: dict[str, Any],
    detection: dict[str, Any],
    device_id: str | None,
    agent_uuid: str | None,
    hostname: str | None,
    ips: tuple[str, ...],
) -> dict[str, Any]:
    os_type = _lower(realtime.get("agentOsType"))
    group_name = _identity(realtime.get("groupName"))
    group_id = _identity(realtime.get("groupId"))
    interfaces = realtime.get("networkInterfaces")
    # Only interfaces with a usable address: idle tunnels and bridges would bloat every finding.
    macs = [
        {"name": i.get("name"), "mac": _identity(i.get("physical"))}
        for i in (interfaces if isinstance(interfaces, list) else ())
        if isinstance(i, dict) and _has_usable_ip(i)
    ]
    return {
        "uid": device_id,
        "hostname": hostname,
        "domain": _identity(realtime.get("agentDomain")) or _identity(detection.get("agentDomain")),
        "type": _text(realtime.get("agentMachineType")),
        "ip": ips[0] if ips else None,
        "os": {
            "name": _text(realtime.get("agentOsName")) or _text(detection.get("agentOsName")),
            "version": _text(realtime.get("agentOsRevision")) or _text(detection.get("agentOsRevision")),
            "type": os_type,
            "type_id": OS_TYPE_ID.get(os_type or "", 99 if os_type else 0),
        },
        "groups": [{"name": group_name, "uid": group_id}] if group_name or group_id else [],
        "network_interfaces": macs,
        "agent_list": [
            {
                "uid": agent_uuid,
                "version": _text(realtime.get("agentVersion")) or _text(detection.get("agentVersion")),
                "vendor_name": "SentinelOne",
                "type_id": 1,
            }
        ],
    }


def _engines(info: dict[str, Any]) -> list[str]:
    engines = info.get("detectionEngines")
    if isinstance(engines, list):
        titles = [e.get("title") for e in engines if isinstance(e, dict) and e.get("title")]
        if titles:
            return [str(t) for t in titles]
    plain = info.get("engines")
    return [str(e) for e in plain if e] if isinstance(plain, list) else []


def _analytic(info: dict[str, Any], engines: list[str]) -> dict[str, Any]:
    kind = _lower(info.get("detectionType"))
    type_id, type_name = ANALYTIC_TYPE.get(kind or "", (99, "Other"))
    first = info.get("detectionEngines")
    key = first[0].get("key") if isinstance(first, list) and first and isinstance(first[0], dict) else None
    return {"uid": key, "name": ", ".join(engines) or None, "type_id": type_id, "type": type_name}


def _evidences(
    info: dict[str, Any], file_path: str | None, originator: str | None, user: str | None
) -> list[dict[str, Any]]:
    hashes = [
        {"algorithm_id": algo_id, "algorithm": algo, "value": info[key]}
        for key, algo, algo_id in HASHES
        if isinstance(info.get(key), str) and info[key]
    ]
    out: list[dict[str, Any]] = []
    if file_path or hashes:
        size = info.get("fileSize")
        out.append(
            {
                "file": {
                    "name": _basename(file_path),
                    "path": file_path,
                    "hashes": hashes,
                    "size": size if isinstance(size, int) and size > 0 else None,
                }
            }
        )
    command_line = _text(info.get("maliciousProcessArguments"))
    if originator or command_line or user:
        out.append({"process": {"name": originator, "cmd_line": command_line, "user": {"name": user}}})
    return out


def _mitigation_actions(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [
        {"action": m.get("action"), "status": m.get("status"), "at": m.get("lastUpdate")}
        for m in value
        if isinstance(m, dict)
    ]


def _decommissioned(realtime: dict[str, Any]) -> bool | None:
    # `agentDecommissionedAt` is a timestamp in newer consoles and a bare boolean in older ones.
    flag = realtime.get("agentIsDecommissioned")
    stamp = realtime.get("agentDecommissionedAt")
    if isinstance(flag, bool):
        return flag or stamp is True or bool(_text(stamp))
    if stamp is True or _text(stamp):
        return True
    return False if stamp is False else None
