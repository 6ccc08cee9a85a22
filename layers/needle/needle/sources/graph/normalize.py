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
from typing import Any
from urllib.parse import quote

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
    optional_time,
    pick,
)

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
HASHES: Algorithms = (("sha1", SHA1), ("sha256", SHA256))
UNMAPPED: Fields = tuple(
    (key, key)
    for key in (
        "incidentId",
        "incidentWebUrl",
        "providerAlertId",
        "serviceSource",
        "determination",
        "assignedTo",
        "threatDisplayName",
        "threatFamilyName",
        "actorDisplayName",
        "resolvedDateTime",
        "recommendedActions",
        "tenantId",
        "systemTags",
    )
)
USER: Fields = (
    ("name", "accountName"),
    ("domain", "domainName"),
    ("uid", "userSid"),
    ("uid_alt", "azureAdUserId"),
    ("email_addr", "userPrincipalName"),
    ("full_name", "displayName"),
)


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
    created = optional_time(alert.get("createdDateTime")) or updated
    first = optional_time(alert.get("firstActivityDateTime"))
    last = optional_time(alert.get("lastActivityDateTime"))
    title = _title(alert, alert_id)
    severity = alert.get("severity")
    severity_id = SEVERITY.get(severity.lower(), OTHER_SEVERITY) if isinstance(severity, str) else 0
    status_label = alert.get("status")
    status = STATUS.get(status_label.lower(), "new") if isinstance(status_label, str) else "new"
    category = alert.get("category")
    tactics = [category] if isinstance(category, str) and category else []
    techniques = _techniques(alert.get("mitreTechniques"))

    scan = _Scan()
    evidences = objs([scan.evidence(row) for row in _evidence_rows(alert.get("evidence"))])
    hints, device = scan.hints(alert_id)
    service = alert.get("serviceSource")
    classification = alert.get("classification")
    return edr_alert(
        source="graph",
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
        tactics=tactics,
        techniques=techniques,
        hints=hints,
        device=device,
        evidences=evidences,
        vendor="Microsoft",
        product=PRODUCTS.get(service, DEFAULT_PRODUCT) if isinstance(service, str) else DEFAULT_PRODUCT,
        console_url=_console_url(alert, alert_id),
        verdict=_known(classification) if isinstance(classification, str) else None,
        unmapped=_unmapped(alert),
        user=scan.user_label(),
        process=scan.process,
        raw=alert,
    )


class _Scan:
    """One pass over the evidence: OCSF evidences plus what the alert says about its entity."""

    def __init__(self) -> None:
        # The first device evidence naming its device: its ids as sent (they key the entity) ...
        self.device_ids: tuple[Any, Any] | None = None
        # ... and what the finding says of it.
        self.device: dict[str, Any] = {}
        self.device_ips: list[str] = []
        self.other_device_id: str | None = None
        self.user_account: dict[str, Any] | None = None  # from userEvidence
        self.other_account: dict[str, Any] | None = None  # from any other evidence
        self.process: str | None = None

    def evidence(self, row: dict[str, Any]) -> dict[str, Any] | None:
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
            data = {k: v for k, v in row.items() if k not in _EVIDENCE_BASE}
            out = obj({"name": clean(kind), "data": clean(data)})
        else:
            out = builder(self, row)
        verdict = row.get("verdict")
        if isinstance(verdict, str) and verdict not in NO_VERDICT:
            out = out or {}
            out["verdict"] = clean(verdict)
        return out

    def hints(self, alert_id: str) -> tuple[DeviceHints, dict[str, Any] | None]:
        if self.device_ids is not None:
            device_id, hostname = self.device_ids
            ips = self.device_ips
            device = obj({**self.device, "ip": ips[0] if ips else None})
            return DeviceHints("mde", device_id, hostname, tuple(ips)), device
        if self.other_device_id is not None:
            return DeviceHints("mde", self.other_device_id, None), {"uid": clean(self.other_device_id)}
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

    def _device(self, row: dict[str, Any]) -> dict[str, Any] | None:
        ips = _usable_ips(row.get("ipInterfaces"))
        device_id, hostname = row.get("mdeDeviceId") or None, row.get("deviceDnsName") or None
        os = {"name": clean(row.get("osPlatform")), "build": _string(row.get("osBuild"))}
        device = {
            "uid": clean(device_id),
            "uid_alt": clean(row.get("azureAdDeviceId")),
            "hostname": clean(hostname),
            "os": obj(os),
            "groups": _groups(row),
            "risk_level": clean(row.get("riskScore")),
            "network_interfaces": [{"ip": ip} for ip in ips] or None,
        }
        if self.device_ids is None and (device_id or hostname):
            self.device_ids = (device_id, hostname)
            self.device = {k: device[k] for k in ("uid", "hostname", "os", "groups")}
            self.device_ips = ips
        users = row.get("loggedOnUsers")
        evidence = {"device": obj(device), "data": member("loggedOnUsers", clean(users)) if users else None}
        return obj(evidence)

    def _process(self, row: dict[str, Any]) -> dict[str, Any] | None:
        image = row.get("imageFile")
        image = image if isinstance(image, dict) else {}
        parent = row.get("parentProcessImageFile")
        parent = parent if isinstance(parent, dict) else {}
        name = image.get("fileName")
        if self.process is None and isinstance(name, str) and name:
            self.process = name
        parent_process = {
            "name": clean(parent.get("fileName")),
            "pid": clean(row.get("parentProcessId")),
            "created_time_dt": clean(row.get("parentProcessCreationDateTime")),
            "file": _file(parent),
        }
        process = {
            "name": clean(name),
            "pid": clean(row.get("processId")),
            "cmd_line": clean(row.get("processCommandLine")),
            "created_time_dt": clean(row.get("processCreationDateTime")),
            "file": _file(image),
            "user": _user(row.get("userAccount")),
            "parent_process": obj(parent_process),
        }
        return member("process", obj(process))

    def _file(self, row: dict[str, Any]) -> dict[str, Any] | None:
        details = row.get("fileDetails")
        return member("file", _file(details if isinstance(details, dict) else {}))

    def _user(self, row: dict[str, Any]) -> dict[str, Any] | None:
        return member("user", _user(row.get("userAccount")))

    def _ip(self, row: dict[str, Any]) -> dict[str, Any] | None:
        endpoint = {
            "ip": clean(row.get("ipAddress")),
            "location": member("country", clean(row.get("countryLetterCode"))),
        }
        roles = row.get("roles")
        source = isinstance(roles, list) and not _SOURCE_ROLES.isdisjoint(
            r for r in roles if isinstance(r, str)
        )
        return member("src_endpoint" if source else "dst_endpoint", obj(endpoint))

    def _url(self, row: dict[str, Any]) -> dict[str, Any] | None:
        return member("url", member("url_string", clean(row.get("url"))))

    def _registry_key(self, row: dict[str, Any]) -> dict[str, Any] | None:
        return member("reg_key", member("path", clean(_registry_path(row))))

    def _registry_value(self, row: dict[str, Any]) -> dict[str, Any] | None:
        value = {
            "path": clean(_registry_path(row)),
            "name": clean(row.get("registryValueName")),
            "type": clean(row.get("registryValueType")),
            "data": clean(row.get("registryValue")),
        }
        return member("reg_value", obj(value))


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


def _unmapped(alert: dict[str, Any]) -> dict[str, Any] | None:
    unmapped = pick(alert, UNMAPPED)
    if unmapped is not None and _known(unmapped.get("determination")) is None:
        unmapped.pop("determination", None)  # a placeholder says nothing
    return unmapped or None


def _evidence_rows(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]  # one evidence object where a list belongs: keep it
    if not isinstance(value, list):
        return []
    return [row for row in value if isinstance(row, dict)]


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


def _string(value: Any) -> str | None:
    # Ids and builds arrive as numbers or strings; the finding always says them as strings.
    return None if value is None else clean(str(value))


def _groups(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    group = row.get("rbacGroupName")
    return objs([obj({"name": clean(group), "uid": _string(row.get("rbacGroupId"))})]) if group else None


def _file(details: dict[str, Any]) -> dict[str, Any] | None:
    if not details:
        return None
    name, folder = details.get("fileName"), details.get("filePath")
    signer, issuer = details.get("signer"), details.get("issuer")
    file = {
        "name": clean(name),
        "path": clean(_join(folder, name)),
        "parent_folder": clean(folder),
        "size": clean(details.get("fileSize")),
        "company_name": clean(details.get("filePublisher")),
        "hashes": hashes(details, HASHES),
        "signature": _signature(signer, issuer) if signer or issuer else None,
    }
    return obj(file)


def _signature(signer: Any, issuer: Any) -> dict[str, Any] | None:
    return member("certificate", obj({"subject": clean(signer), "issuer": clean(issuer)}))


def _user(account: Any) -> dict[str, Any] | None:
    return pick(account, USER) if isinstance(account, dict) else None


def _registry_path(row: dict[str, Any]) -> str | None:
    hive, key = row.get("registryHive"), row.get("registryKey")
    if hive and key:
        return f"{hive}\\{key}"
    return key or hive or None
