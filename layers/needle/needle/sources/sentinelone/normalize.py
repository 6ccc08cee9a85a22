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
from needle.sources.ocsf import (
    MD5,
    SHA1,
    SHA256,
    Algorithms,
    Fields,
    clean,
    edr_alert,
    fingerprint,
    member,
    obj,
    objs,
    optional_time,
    pick,
)

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
HASHES: Algorithms = (("md5", MD5), ("sha1", SHA1), ("sha256", SHA256))
MITIGATION_ACTION: Fields = (("action", "action"), ("status", "status"), ("at", "lastUpdate"))

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
    created = optional_time(info.get("createdAt")) or updated
    identified = optional_time(info.get("identifiedAt"))

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

    return edr_alert(
        source=SOURCE,
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
        hints=DeviceHints(source=SOURCE, device_id=device_id, hostname=hostname, ips=ips),
        device=_device(realtime, detection, device_id, agent_uuid, hostname, ips),
        evidences=_evidences(info, file_path, originator, process_user),
        vendor="SentinelOne",
        product="Singularity Endpoint",
        console_url=console,
        verdict=verdict,
        unmapped=_unmapped(raw, info, realtime, detection, engines, logged_in),
        user=process_user or logged_in,
        process=originator,
        raw=raw,
    )


def _unmapped(
    raw: dict[str, Any],
    info: dict[str, Any],
    realtime: dict[str, Any],
    detection: dict[str, Any],
    engines: list[str],
    logged_in: str | None,
) -> dict[str, Any] | None:
    unmapped = {
        "threatId": clean(info.get("threatId")),
        "classification": clean(info.get("classification")),
        "classificationSource": clean(info.get("classificationSource")),
        "confidenceLevel": clean(info.get("confidenceLevel")),
        "analystVerdict": clean(info.get("analystVerdict")),
        "incidentStatus": clean(info.get("incidentStatus")),
        "mitigationStatus": clean(info.get("mitigationStatus")),
        "mitigationActions": _mitigation_actions(raw.get("mitigationStatus")),
        "detectionType": clean(info.get("detectionType")),
        "engines": clean(engines),
        "initiatedBy": clean(info.get("initiatedBy")),
        "storyline": clean(info.get("storyline")),
        "collectionId": clean(info.get("collectionId")),
        "cloudFilesHashVerdict": clean(info.get("cloudFilesHashVerdict")),
        "externalIp": clean(_text(detection.get("externalIp"))),
        "agentNetworkStatus": clean(realtime.get("agentNetworkStatus")),
        "agentDecommissioned": _decommissioned(realtime),
        "lastLoggedInUser": clean(logged_in),
        "site": clean(_text(realtime.get("siteName"))),
        "account": clean(_text(realtime.get("accountName"))),
    }
    return obj(unmapped)


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
        if isinstance(values, list):
            for value in values:
                if isinstance(value, str) and _usable_ip(value):
                    return True
    return False


def _device(
    realtime: dict[str, Any],
    detection: dict[str, Any],
    device_id: str | None,
    agent_uuid: str | None,
    hostname: str | None,
    ips: tuple[str, ...],
) -> dict[str, Any] | None:
    os_type = _lower(realtime.get("agentOsType"))
    os = {
        "name": clean(_text(realtime.get("agentOsName")) or _text(detection.get("agentOsName"))),
        "version": clean(_text(realtime.get("agentOsRevision")) or _text(detection.get("agentOsRevision"))),
        "type": clean(os_type),
        "type_id": OS_TYPE_ID.get(os_type or "", 99 if os_type else 0),
    }
    agent = {
        "uid": clean(agent_uuid),
        "version": clean(_text(realtime.get("agentVersion")) or _text(detection.get("agentVersion"))),
        "vendor_name": "SentinelOne",
        "type_id": 1,
    }
    device = {
        "uid": clean(device_id),
        "hostname": clean(hostname),
        "domain": clean(_identity(realtime.get("agentDomain")) or _identity(detection.get("agentDomain"))),
        "type": clean(_text(realtime.get("agentMachineType"))),
        "ip": ips[0] if ips else None,  # canonical addresses, so short
        "os": obj(os),
        "groups": _groups(realtime),
        "network_interfaces": _network_interfaces(realtime.get("networkInterfaces")),
        "agent_list": [obj(agent)],
    }
    return obj(device)


def _groups(realtime: dict[str, Any]) -> list[dict[str, Any]] | None:
    group = {
        "name": clean(_identity(realtime.get("groupName"))),
        "uid": clean(_identity(realtime.get("groupId"))),
    }
    return objs([obj(group)])


def _network_interfaces(interfaces: Any) -> list[dict[str, Any]] | None:
    if not isinstance(interfaces, list):
        return None
    # Only interfaces with a usable address: idle tunnels and bridges would bloat every finding.
    return objs(
        [
            obj({"name": clean(i.get("name")), "mac": clean(_identity(i.get("physical")))})
            for i in interfaces
            if isinstance(i, dict) and _has_usable_ip(i)
        ]
    )


def _engines(info: dict[str, Any]) -> list[str]:
    engines = info.get("detectionEngines")
    if isinstance(engines, list):
        titles = [e.get("title") for e in engines if isinstance(e, dict) and e.get("title")]
        if titles:
            return [str(t) for t in titles]
    plain = info.get("engines")
    return [str(e) for e in plain if e] if isinstance(plain, list) else []


def _analytic(info: dict[str, Any], engines: list[str]) -> dict[str, Any] | None:
    kind = _lower(info.get("detectionType"))
    type_id, type_name = ANALYTIC_TYPE.get(kind or "", (99, "Other"))
    first = info.get("detectionEngines")
    key = first[0].get("key") if isinstance(first, list) and first and isinstance(first[0], dict) else None
    return obj(
        {"uid": clean(key), "name": clean(", ".join(engines) or None), "type_id": type_id, "type": type_name}
    )


def _evidences(
    info: dict[str, Any], file_path: str | None, originator: str | None, user: str | None
) -> list[dict[str, Any]] | None:
    return objs([_file_evidence(info, file_path), _process_evidence(info, originator, user)])


def _file_evidence(info: dict[str, Any], path: str | None) -> dict[str, Any] | None:
    hashes = [
        fingerprint(algorithm, info[key])
        for key, algorithm in HASHES
        if isinstance(info.get(key), str) and info[key]
    ]
    if not path and not hashes:
        return None
    size = info.get("fileSize")
    file = {
        "name": clean(_basename(path)),
        "path": clean(path),
        "hashes": hashes or None,
        "size": size if isinstance(size, int) and size > 0 else None,
    }
    return member("file", obj(file))


def _process_evidence(info: dict[str, Any], name: str | None, user: str | None) -> dict[str, Any] | None:
    command_line = _text(info.get("maliciousProcessArguments"))
    if not name and not command_line and not user:
        return None
    process = {"name": clean(name), "cmd_line": clean(command_line), "user": member("name", clean(user))}
    return member("process", obj(process))


def _mitigation_actions(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    return objs([pick(action, MITIGATION_ACTION) for action in value if isinstance(action, dict)])


def _decommissioned(realtime: dict[str, Any]) -> bool | None:
    # `agentDecommissionedAt` is a timestamp in newer consoles and a bare boolean in older ones.
    flag = realtime.get("agentIsDecommissioned")
    stamp = realtime.get("agentDecommissionedAt")
    if isinstance(flag, bool):
        return flag or stamp is True or bool(_text(stamp))
    if stamp is True or _text(stamp):
        return True
    return False if stamp is False else None
