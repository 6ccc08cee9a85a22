"""Graph security alert (alerts_v2) -> normalized Event (OCSF Detection Finding subset).

Severity (`alertSeverity`, lowercase on the wire; compared case-insensitively):

| Graph severity          | OCSF severity_id  |
|-------------------------|-------------------|
| missing, `unknown`      | 0 Unknown         |
| `informational`         | 1 Informational   |
| `low`                   | 2 Low             |
| `medium`                | 3 Medium          |
| `high`                  | 4 High            |
| `unknownFutureValue`    | 0 Unknown         |
| any other string        | 99 Other          |

Graph has no Critical. `unknownFutureValue` is what Graph sends for a member newer than the
caller opted into, so it says nothing about severity.

Status: `new` -> new, `inProgress` -> in_progress, `resolved` -> resolved, anything else -> new.
Verdict: `classification` (`truePositive`, `falsePositive`, `informationalExpectedActivity`)
unless it is `unknown`; `determination` (e.g. `malware`) goes beside it in `unmapped`.

Entity (DeviceHints), in order:
1. the first `deviceEvidence` naming `mdeDeviceId` or `deviceDnsName`: device_id = mdeDeviceId,
   hostname = deviceDnsName, ips = the usable addresses of `ipInterfaces` (loopback, link-local,
   unspecified and multicast dropped). The hints' source is "mde": `mdeDeviceId` *is* the MDE
   `machineId`, so one device seen through both APIs resolves to one entity alias.
2. else an `mdeDeviceId` on any other evidence (file/process evidence carry one).
3. else a user (identity, cloud-app and mail alerts have no device): DeviceHints(source="graph",
   device_id="user:<userPrincipalName or accountName, lower-cased>", hostname=None), taken from
   the first userEvidence, else the first evidence with a `userAccount`.
4. else the record is malformed (MalformedRecordError), as are records without `id` or with a
   missing or unparseable `lastUpdateDateTime`. Everything else that is merely unexpected
   (unknown evidence types, bad optional times, missing title) normalizes.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import datetime
from typing import Any
from urllib.parse import quote

from needle.model.event import DeviceHints, Event, MalformedRecordError, parse_time
from needle.sources.ocsf import detection_finding

CONSOLE = "https://security.microsoft.com/alerts/"
TYPE_PREFIX = "#microsoft.graph.security."

SEVERITY = {
    "unknown": 0,
    "informational": 1,
    "low": 2,
    "medium": 3,
    "high": 4,
    "unknownfuturevalue": 0,
}
OTHER_SEVERITY = 99
STATUS = {"new": "new", "inprogress": "in_progress", "resolved": "resolved"}
NO_VERDICT = frozenset({"unknown", "unknownFutureValue"})
PRODUCTS = {
    "microsoftDefenderForEndpoint": "Defender for Endpoint",
    "microsoftDefenderForIdentity": "Defender for Identity",
    "microsoftDefenderForCloudApps": "Defender for Cloud Apps",
    "microsoftDefenderForOffice365": "Defender for Office 365",
    "microsoft365Defender": "Defender XDR",
    "azureAdIdentityProtection": "Entra ID Protection",
    "microsoftAppGovernance": "App Governance",
    "dataLossPrevention": "Purview Data Loss Prevention",
    "microsoftDefenderForCloud": "Defender for Cloud",
}
DEFAULT_PRODUCT = "Graph security alerts"
# Fields every alertEvidence has; an unknown evidence type keeps only the rest.
_EVIDENCE_BASE = frozenset(
    {
        "@odata.type",
        "createdDateTime",
        "verdict",
        "remediationStatus",
        "remediationStatusDetails",
        "roles",
        "detailedRoles",
        "tags",
    }
)
_SOURCE_ROLES = frozenset({"source", "attacker", "commandAndControl"})


def normalize(alert: dict[str, Any]) -> Event:
    """Normalize one alerts_v2 object (as listed, evidence inline).

    Raises MalformedRecordError when the record cannot be an alert (see the module docstring).
    """
    if not isinstance(alert, dict):
        raise MalformedRecordError("alert is not a JSON object")
    alert_id = alert.get("id")
    if not isinstance(alert_id, str) or not alert_id.strip():
        raise MalformedRecordError("missing or empty 'id'")
    updated = parse_time(alert.get("lastUpdateDateTime"))
    created = _optional_time(alert.get("createdDateTime")) or updated
    first = _optional_time(alert.get("firstActivityDateTime"))
    last = _optional_time(alert.get("lastActivityDateTime"))
    title = _title(alert, alert_id)
    severity = alert.get("severity")
    severity_id = SEVERITY.get(severity.lower(), OTHER_SEVERITY) if isinstance(severity, str) else 0
    status_label = alert.get("status")
    status = STATUS.get(status_label.lower(), "new") if isinstance(status_label, str) else "new"
    category = alert.get("category")
    tactics = [category] if isinstance(category, str) and category else []
    techniques = _techniques(alert.get("mitreTechniques"))

    scan = _Scan()
    evidences = [scan.evidence(row) for row in _evidence_rows(alert.get("evidence"))]
    hints, device = scan.hints(alert_id)
    user = scan.user_label()
    console_url = _console_url(alert, alert_id)
    service = alert.get("serviceSource")
    classification = alert.get("classification")
    verdict = _known(classification) if isinstance(classification, str) else None
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
        device=device,
        evidences=evidences,
        vendor="Microsoft",
        product=PRODUCTS.get(service, DEFAULT_PRODUCT) if isinstance(service, str) else DEFAULT_PRODUCT,
        console_url=console_url,
        verdict=verdict,
        unmapped={
            "incidentId": alert.get("incidentId"),
            "incidentWebUrl": alert.get("incidentWebUrl"),
            "providerAlertId": alert.get("providerAlertId"),
            "serviceSource": service,
            "determination": _known(alert.get("determination")),
            "assignedTo": alert.get("assignedTo"),
            "threatDisplayName": alert.get("threatDisplayName"),
            "threatFamilyName": alert.get("threatFamilyName"),
            "actorDisplayName": alert.get("actorDisplayName"),
            "resolvedDateTime": alert.get("resolvedDateTime"),
            "recommendedActions": alert.get("recommendedActions"),
            "tenantId": alert.get("tenantId"),
            "systemTags": alert.get("systemTags"),
        },
    )
    return Event(
        source="graph",
        vendor_id=alert_id,
        kind="edr_alert",
        time=first or created,
        updated_at=updated,
        title=title,
        severity_id=severity_id,
        status=status,
        tactics=tuple(tactics),
        techniques=tuple(techniques),
        device=hints,
        user=user,
        process=scan.process,
        console_url=console_url,
        finding=finding,
        raw=alert,
    )


class _Scan:
    """One pass over the evidence: OCSF evidences plus what the alert says about its entity."""

    def __init__(self) -> None:
        self.device: dict[str, Any] | None = None
        self.device_ips: list[str] = []
        self.other_device_id: str | None = None
        self.user_account: dict[str, Any] | None = None  # from userEvidence
        self.other_account: dict[str, Any] | None = None  # from any other evidence
        self.process: str | None = None

    def evidence(self, row: dict[str, Any]) -> dict[str, Any]:
        odata_type = row.get("@odata.type")
        kind = odata_type.removeprefix(TYPE_PREFIX) if isinstance(odata_type, str) else None
        account = row.get("userAccount")
        if isinstance(account, dict):
            if kind == "userEvidence":
                if self.user_account is None:
                    self.user_account = account
            elif self.other_account is None:
                self.other_account = account
        mde_id = row.get("mdeDeviceId")
        if self.other_device_id is None and isinstance(mde_id, str) and mde_id:
            self.other_device_id = mde_id
        builder = _BUILDERS.get(kind) if kind is not None else None
        if builder is None:
            out: dict[str, Any] = {
                "name": kind,
                "data": {k: v for k, v in row.items() if k not in _EVIDENCE_BASE},
            }
        else:
            out = builder(self, row)
        verdict = row.get("verdict")
        if isinstance(verdict, str) and verdict not in NO_VERDICT:
            out["verdict"] = verdict
        return out

    def hints(self, alert_id: str) -> tuple[DeviceHints, dict[str, Any] | None]:
        device = self.device
        if device is not None:
            device_id, hostname = device.get("uid"), device.get("hostname")
            finding_device = {**device, "ip": self.device_ips[0] if self.device_ips else None}
            return DeviceHints("mde", device_id, hostname, tuple(self.device_ips)), finding_device
        if self.other_device_id is not None:
            return DeviceHints("mde", self.other_device_id, None), {"uid": self.other_device_id}
        account = self.user_account or self.other_account
        name = _account_key(account) if account is not None else None
        if name is None:
            raise MalformedRecordError(f"alert {alert_id[:64]!r} names neither a device nor a user")
        return DeviceHints("graph", f"user:{name}", None), None

    def user_label(self) -> str | None:
        account = self.user_account or self.other_account
        if account is None:
            return None
        name, domain = account.get("accountName"), account.get("domainName")
        if isinstance(name, str) and name:
            return f"{domain}\\{name}" if isinstance(domain, str) and domain else name
        upn = account.get("userPrincipalName")
        return upn if isinstance(upn, str) and upn else None

    # -- one builder per evidence type ---------------------------------------------------

    def _device(self, row: dict[str, Any]) -> dict[str, Any]:
        ips = _usable_ips(row.get("ipInterfaces"))
        group, group_id = row.get("rbacGroupName"), row.get("rbacGroupId")
        build = row.get("osBuild")
        device = {
            "uid": row.get("mdeDeviceId") or None,
            "uid_alt": row.get("azureAdDeviceId"),
            "hostname": row.get("deviceDnsName") or None,
            "os": {"name": row.get("osPlatform"), "build": None if build is None else str(build)},
            "groups": [{"name": group, "uid": None if group_id is None else str(group_id)}]
            if group
            else None,
            "risk_level": row.get("riskScore"),
        }
        if self.device is None and (device["uid"] or device["hostname"]):
            self.device = {k: v for k, v in device.items() if k in ("uid", "hostname", "os", "groups")}
            self.device_ips = ips
        users = row.get("loggedOnUsers")
        return {
            "device": {**device, "network_interfaces": [{"ip": ip} for ip in ips]},
            "data": {"loggedOnUsers": users} if users else None,
        }

    def _process(self, row: dict[str, Any]) -> dict[str, Any]:
        image = row.get("imageFile")
        image = image if isinstance(image, dict) else {}
        parent = row.get("parentProcessImageFile")
        parent = parent if isinstance(parent, dict) else {}
        name = image.get("fileName")
        if self.process is None and isinstance(name, str) and name:
            self.process = name
        return {
            "process": {
                "name": name,
                "pid": row.get("processId"),
                "cmd_line": row.get("processCommandLine"),
                "created_time_dt": row.get("processCreationDateTime"),
                "file": _file(image),
                "user": _user(row.get("userAccount")),
                "parent_process": {
                    "name": parent.get("fileName"),
                    "pid": row.get("parentProcessId"),
                    "created_time_dt": row.get("parentProcessCreationDateTime"),
                    "file": _file(parent),
                },
            }
        }

    def _file(self, row: dict[str, Any]) -> dict[str, Any]:
        details = row.get("fileDetails")
        return {"file": _file(details if isinstance(details, dict) else {})}

    def _user(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"user": _user(row.get("userAccount"))}

    def _ip(self, row: dict[str, Any]) -> dict[str, Any]:
        endpoint = {"ip": row.get("ipAddress"), "location": {"country": row.get("countryLetterCode")}}
        roles = row.get("roles")
        source = isinstance(roles, list) and not _SOURCE_ROLES.isdisjoint(
            r for r in roles if isinstance(r, str)
        )
        return {"src_endpoint" if source else "dst_endpoint": endpoint}

    def _url(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"url": {"url_string": row.get("url")}}

    def _registry_key(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"reg_key": {"path": _registry_path(row)}}

    def _registry_value(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "reg_value": {
                "path": _registry_path(row),
                "name": row.get("registryValueName"),
                "type": row.get("registryValueType"),
                "data": row.get("registryValue"),
            }
        }


_BUILDERS = {
    "deviceEvidence": _Scan._device,
    "processEvidence": _Scan._process,
    "fileEvidence": _Scan._file,
    "userEvidence": _Scan._user,
    "ipEvidence": _Scan._ip,
    "urlEvidence": _Scan._url,
    "registryKeyEvidence": _Scan._registry_key,
    "registryValueEvidence": _Scan._registry_value,
}


def _evidence_rows(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]  # one evidence object where a list belongs: keep it
    if not isinstance(value, list):
        return []
    return [row for row in value if isinstance(row, dict)]


def _optional_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(value)
    except MalformedRecordError:
        return None  # an optional time that does not parse is dropped, not fatal


def _known(value: Any) -> Any:
    return None if isinstance(value, str) and value in NO_VERDICT else value


def _title(alert: dict[str, Any], alert_id: str) -> str:
    for key in ("title", "threatDisplayName"):
        value = alert.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return f"Graph alert {alert_id}"


def _techniques(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str) and v]


def _console_url(alert: dict[str, Any], alert_id: str) -> str:
    # Only an https link is rendered as one: the field is vendor data shown in reports.
    url = alert.get("alertWebUrl")
    if isinstance(url, str) and url.startswith("https://"):
        return url
    tenant = alert.get("tenantId")
    suffix = f"?tid={quote(tenant, safe='')}" if isinstance(tenant, str) and tenant else ""
    return CONSOLE + quote(alert_id, safe="") + suffix


def _account_key(account: dict[str, Any]) -> str | None:
    for key in ("userPrincipalName", "accountName"):
        value = account.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return None


def _usable_ips(values: Any) -> list[str]:
    """Addresses that can identify a host: valid, not loopback/link-local/unspecified/multicast."""
    if not isinstance(values, list):
        return []
    out: list[str] = []
    for value in values:
        text = _usable_ip(value) if isinstance(value, str) else None
        if text is not None and text not in out:
            out.append(text)
    return out


@functools.lru_cache(maxsize=4096)
def _usable_ip(value: str) -> str | None:
    # A device reports the same few addresses on every alert: parse each once.
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast:
        return None
    return str(address)


def _join(directory: Any, name: Any) -> str | None:
    if not name:
        return directory or None
    return f"{str(directory).rstrip(chr(92))}\\{name}" if directory else str(name)


def _file(details: dict[str, Any]) -> dict[str, Any] | None:
    if not details:
        return None
    hashes = [
        {"algorithm_id": algo_id, "algorithm": algo, "value": details[key]}
        for key, algo, algo_id in (("sha1", "SHA-1", 2), ("sha256", "SHA-256", 3))
        if details.get(key)
    ]
    signer, issuer = details.get("signer"), details.get("issuer")
    return {
        "name": details.get("fileName"),
        "path": _join(details.get("filePath"), details.get("fileName")),
        "parent_folder": details.get("filePath"),
        "size": details.get("fileSize"),
        "company_name": details.get("filePublisher"),
        "hashes": hashes,
        "signature": {"certificate": {"subject": signer, "issuer": issuer}} if signer or issuer else None,
    }


def _user(account: Any) -> dict[str, Any] | None:
    if not isinstance(account, dict):
        return None
    return {
        "name": account.get("accountName"),
        "domain": account.get("domainName"),
        "uid": account.get("userSid"),
        "uid_alt": account.get("azureAdUserId"),
        "email_addr": account.get("userPrincipalName"),
        "full_name": account.get("displayName"),
    }


def _registry_path(row: dict[str, Any]) -> str | None:
    hive, key = row.get("registryHive"), row.get("registryKey")
    if hive and key:
        return f"{hive}\\{key}"
    return key or hive or None
