"""needle.sources.crowdstrike.normalize: a Falcon Alerts v2 object -> Event with an OCSF Detection Finding."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from needle.model.event import DeviceHints, MalformedRecordError, pack_raw, unpack_raw
from needle.sources.crowdstrike.normalize import normalize, severity_of

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "crowdstrike"
CID = "7d3e2f1a0b9c48d7a6e5f4c3b2a19080"
EPP_ID = f"{CID}:ind:c4a1e9f27b3d4e58a0f6b2d9e7c13a54:88213400917-10197-31550224"
AID = "c4a1e9f27b3d4e58a0f6b2d9e7c13a54"


def load(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def epp() -> dict[str, Any]:
    return load("alert_epp_credential_dump")


@pytest.fixture
def idp() -> dict[str, Any]:
    return load("alert_idp_no_device")


@pytest.fixture
def ods() -> dict[str, Any]:
    return load("alert_ods_scan")


def _evidence(finding: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [e[key] for e in finding["evidences"] if key in e]


# --- an endpoint (epp/ldt) alert ------------------------------------------------------------


def test_endpoint_alert_becomes_an_edr_alert_event(epp: dict[str, Any]) -> None:
    # WHEN an endpoint detection with a device object is normalized
    event = normalize(epp)
    # THEN it is keyed by composite_id, titled by display_name, and placed on the device
    assert event.source == "crowdstrike"
    assert event.vendor_id == EPP_ID
    assert event.uid == f"crowdstrike:{EPP_ID}"
    assert event.kind == "edr_alert"
    assert event.title == "LSASS memory dumped with comsvcs.dll MiniDump"
    assert event.severity_id == 4
    assert event.status == "in_progress"
    assert event.device == DeviceHints(
        source="crowdstrike",
        device_id=AID,
        hostname="FIN-LT-0193",
        ips=("10.42.8.193",),  # the shared NAT address (external_ip) makes no lease
    )
    assert event.user == "CONTOSOFIN\\m.okafor"
    assert event.process == "rundll32.exe"
    assert event.console_url is not None
    assert event.console_url.startswith("https://falcon.us-2.crowdstrike.com/activity-v2/detections/")


def test_event_time_is_the_detection_time_and_updated_at_the_cursor(epp: dict[str, Any]) -> None:
    event = normalize(epp)

    assert event.time == datetime(2025, 5, 12, 14, 1, 7, 331000, tzinfo=UTC)
    # Nanoseconds are cut to what datetime holds, never rounded up past the vendor time.
    assert event.updated_at == datetime(2025, 5, 12, 14, 9, 30, 441500, tzinfo=UTC)


def test_tactics_and_techniques_come_from_the_alert_and_every_mitre_attack_entry(epp: dict[str, Any]) -> None:
    event = normalize(epp)

    assert event.tactics == ("TA0006", "TA0005")
    assert event.techniques == ("T1003", "T1003.001", "T1218.011")
    attacks = event.finding["finding_info"]["attacks"]
    assert attacks[0] == {
        "technique": {"uid": "T1003"},
        "tactic": {"uid": "TA0006", "name": "Credential Access"},
    }
    assert [a["technique"]["uid"] for a in attacks] == ["T1003", "T1003.001", "T1218.011"]


def test_finding_is_an_ocsf_detection_finding_with_vendor_metadata(epp: dict[str, Any]) -> None:
    finding = normalize(epp).finding

    assert (finding["class_uid"], finding["category_uid"], finding["type_uid"]) == (2004, 2, 200401)
    assert (finding["severity_id"], finding["severity"]) == (4, "High")
    assert (finding["status_id"], finding["status"]) == (2, "in_progress")
    info = finding["finding_info"]
    assert info["uid"] == EPP_ID
    assert info["analytic"] == {"uid": "10197", "name": "CredentialDumpingLsassComsvcs", "type_id": 1}
    assert info["created_time"] == ms(datetime(2025, 5, 12, 14, 3, 51, 884000, tzinfo=UTC))
    assert info["first_seen_time"] == ms(datetime(2025, 5, 12, 14, 1, 7, 331000, tzinfo=UTC))
    assert info["modified_time"] == ms(datetime(2025, 5, 12, 14, 9, 30, 441000, tzinfo=UTC))
    assert info["src_url"] == epp["falcon_host_link"]
    assert finding["metadata"]["product"] == {"vendor_name": "CrowdStrike", "name": "Falcon Insight"}
    assert finding["unmapped"]["id"] == epp["id"]
    assert finding["unmapped"]["status"] == "in_progress"


def test_finding_device_carries_network_and_os_details(epp: dict[str, Any]) -> None:
    device = normalize(epp).finding["device"]

    assert device == {
        "uid": AID,
        "hostname": "FIN-LT-0193",
        "ip": "10.42.8.193",
        "mac": "3c-52-82-1f-9a-07",
        "domain": "corp.contoso-fin.example",
        "os": {"name": "Windows 11", "type": "Windows"},
        "external_ip": "198.51.100.23",
    }


def test_process_evidence_keeps_command_line_hashes_and_parent(epp: dict[str, Any]) -> None:
    [process] = _evidence(normalize(epp).finding, "process")

    assert process["name"] == "rundll32.exe"
    assert process["pid"] == 9124
    assert process["cmd_line"].startswith("rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump")
    assert process["file"]["path"] == "\\Device\\HarddiskVolume3\\Windows\\System32\\rundll32.exe"
    # The all-zero sha1 Falcon sends when it computed none is not a hash.
    assert [h["algorithm"] for h in process["file"]["hashes"]] == ["MD5", "SHA-256"]
    assert process["user"] == {
        "name": "m.okafor",
        "uid": "S-1-5-21-2716423951-3304471102-1980044127-2214",
        "domain": "CONTOSOFIN",
    }
    parent = process["parent_process"]
    assert parent["name"] == "powershell.exe"
    assert parent["pid"] == 6640
    assert parent["cmd_line"].endswith("-nop -w hidden")
    assert parent["file"]["hashes"] == [
        {"algorithm_id": 1, "algorithm": "MD5", "value": "7353f60b1739074eb17c5f4dddefe239"},
        {
            "algorithm_id": 3,
            "algorithm": "SHA-256",
            "value": "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c",
        },
    ]


def test_raw_payload_is_kept(epp: dict[str, Any]) -> None:
    sent = copy.deepcopy(epp)

    event = normalize(epp)

    # THEN the event carries the vendor payload as received, and it packs for storage without loss
    assert event.raw == sent
    assert json.loads(unpack_raw(pack_raw(event.raw))) == sent


# --- an identity (idp) alert without a device -----------------------------------------------


def test_identity_alert_without_device_is_placed_on_the_user(idp: dict[str, Any]) -> None:
    # GIVEN an Identity Protection alert: no `device`, an agent_id of the source endpoint's sensor
    assert "device" not in idp
    # WHEN it is normalized
    event = normalize(idp)
    # THEN the entity is the account, as a hostname-less device hint
    assert event.device == DeviceHints(source="crowdstrike", device_id="user:svc.backup", hostname=None)
    assert event.user == "svc.backup"
    assert event.process is None
    assert "device" not in event.finding
    assert event.console_url is not None
    assert "/identity-protection/detections/" in event.console_url


def test_identity_alert_keeps_account_and_endpoints_as_evidence(idp: dict[str, Any]) -> None:
    finding = normalize(idp).finding

    assert _evidence(finding, "user") == [
        {
            "name": "svc.backup",
            "uid": "S-1-5-21-2716423951-3304471102-1980044127-5120",
            "domain": "CORP.CONTOSO-FIN.EXAMPLE",
            "email_addr": "svc.backup@contoso-fin.example",
        }
    ]
    assert _evidence(finding, "src_endpoint") == [
        {
            "hostname": "FIN-JUMP-02.corp.contoso-fin.example",
            "ip": "10.42.16.2",
            "uid": "91b2c3d4e5f60718293a4b5c6d7e8f90",
        }
    ]
    assert _evidence(finding, "dst_endpoint")[0]["hostname"] == "FIN-DC-01.corp.contoso-fin.example"
    assert finding["metadata"]["product"]["name"] == "Falcon Identity Protection"


def test_identity_alert_severity_tactic_and_times(idp: dict[str, Any]) -> None:
    event = normalize(idp)

    assert event.severity_id == 4
    assert (event.tactics, event.techniques) == (("TA0006",), ("T1110",))
    assert event.time == datetime(2025, 5, 12, 14, 20, 14, 600000, tzinfo=UTC)
    assert event.updated_at == datetime(2025, 5, 12, 14, 22, 2, 558094, tzinfo=UTC)


def test_identity_alert_falls_back_to_the_upn_when_user_name_is_missing(idp: dict[str, Any]) -> None:
    del idp["user_name"]

    event = normalize(idp)

    assert event.device.device_id == "user:svc.backup@contoso-fin.example"
    assert event.user is None


# --- an on-demand scan (ods) alert ----------------------------------------------------------


def test_on_demand_scan_alert_normalizes(ods: dict[str, Any]) -> None:
    event = normalize(ods)

    assert event.vendor_id == ods["composite_id"]
    assert event.title == "OnDemandScanMLFileAnalysisMedium"
    assert (event.severity_id, event.status) == (3, "resolved")
    assert event.device.device_id == "2f8e7d6c5b4a43219f8e7d6c5b4a3921"
    assert event.device.hostname == "ENG-WS-0457"
    assert event.process == "KeyGen_v2.exe"
    assert event.user is None
    assert event.time == datetime(2025, 5, 12, 15, 2, 11, tzinfo=UTC)
    assert event.finding["verdict"] == "true_positive"


def test_crowdstrike_specific_tactics_stay_out_of_attack_but_are_kept(ods: dict[str, Any]) -> None:
    event = normalize(ods)

    assert (event.tactics, event.techniques) == ((), ())
    assert "attacks" not in event.finding["finding_info"]
    unmapped = event.finding["unmapped"]
    assert (unmapped["tactic_id"], unmapped["tactic"]) == ("CSTA0004", "Machine Learning")
    assert unmapped["technique_id"] == "CST0007"


def test_scan_file_evidence_has_the_drive_path_and_sha256(ods: dict[str, Any]) -> None:
    [process] = _evidence(normalize(ods).finding, "process")

    assert process["file"]["path"] == "D:\\Downloads\\tools\\KeyGen_v2.exe"
    assert process["file"]["hashes"] == [{"algorithm_id": 3, "algorithm": "SHA-256", "value": ods["sha256"]}]
    assert "parent_process" not in process


# --- mappings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "score", "expected"),
    [
        ("Informational", 5, 1),
        ("Low", 25, 2),
        ("Medium", 50, 3),
        ("High", 79, 4),
        ("Critical", 95, 5),
        ("critical", None, 5),
        ("HIGH", 10, 4),  # the name wins over the score
        (None, 10, 1),
        (None, 30, 2),
        (None, 45, 3),
        (None, 70, 4),
        (None, 80, 5),
        (None, 100, 5),
        (None, 0, 0),
        (None, "65", 4),
        ("Severe", 85, 5),  # an unknown name falls back to the score
        ("Severe", None, 0),
        (None, "high", 0),
        (None, True, 0),
        (None, None, 0),
    ],
)
def test_severity_mapping(name: str | None, score: Any, expected: int) -> None:
    alert: dict[str, Any] = {}
    if name is not None:
        alert["severity_name"] = name
    if score is not None:
        alert["severity"] = score

    assert severity_of(alert) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("new", "new"),
        ("in_progress", "in_progress"),
        ("reopened", "new"),
        ("closed", "resolved"),
        ("ignored", "suppressed"),
        ("Closed", "resolved"),
        ("something_else", "new"),
        (None, "new"),
    ],
)
def test_status_mapping(epp: dict[str, Any], status: str | None, expected: str) -> None:
    epp["status"] = status

    assert normalize(epp).status == expected


def test_title_falls_back_to_name_then_to_the_alert_type(epp: dict[str, Any]) -> None:
    del epp["display_name"]
    assert normalize(epp).title == "CredentialDumpingLsassComsvcs"

    epp["name"] = ""
    assert normalize(epp).title == "CrowdStrike ldt alert"


def test_a_tactic_label_without_an_id_still_resolves(epp: dict[str, Any]) -> None:
    del epp["tactic_id"]
    del epp["mitre_attack"]
    epp["tactic"] = "Lateral Movement"

    assert normalize(epp).tactics == ("TA0008",)


# --- unexpected but usable shapes ---------------------------------------------------------


def test_a_bad_detection_time_falls_back_to_the_creation_time(epp: dict[str, Any]) -> None:
    epp["timestamp"] = "not a time"

    event = normalize(epp)

    assert event.time == datetime(2025, 5, 12, 14, 3, 51, 884120, tzinfo=UTC)


def test_missing_detection_and_creation_times_fall_back_to_the_update_time(epp: dict[str, Any]) -> None:
    del epp["timestamp"]
    del epp["created_timestamp"]

    assert normalize(epp).time == normalize(epp).updated_at


def test_odd_containers_are_ignored_not_fatal(epp: dict[str, Any]) -> None:
    epp["mitre_attack"] = {"technique_id": "T1059"}
    epp["parent_details"] = "n/a"
    epp["source_products"] = []
    epp["local_process_id"] = "not-a-pid"

    event = normalize(epp)

    assert event.techniques == ("T1003",)
    [process] = _evidence(event.finding, "process")
    assert "parent_process" not in process
    assert "pid" not in process
    assert event.finding["metadata"]["product"]["name"] == "Falcon"


def test_a_device_object_without_ids_falls_back_to_agent_id(epp: dict[str, Any]) -> None:
    epp["device"] = {"platform_name": "Windows"}

    assert normalize(epp).device == DeviceHints(source="crowdstrike", device_id=AID, hostname=None)


def test_an_endpoint_alert_without_device_uses_agent_id(epp: dict[str, Any]) -> None:
    del epp["device"]

    assert normalize(epp).device.device_id == AID


# --- malformed records ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["composite_id", "updated_timestamp"])
def test_a_record_without_id_or_update_time_is_malformed(epp: dict[str, Any], field: str) -> None:
    del epp[field]

    with pytest.raises(MalformedRecordError):
        normalize(epp)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("composite_id", ""),
        ("composite_id", 42),
        ("updated_timestamp", "yesterday"),
        ("updated_timestamp", 0),
    ],
)
def test_a_blank_id_or_unparseable_update_time_is_malformed(
    epp: dict[str, Any], field: str, value: Any
) -> None:
    epp[field] = value

    with pytest.raises(MalformedRecordError):
        normalize(epp)


def test_a_record_with_neither_device_nor_user_is_malformed(idp: dict[str, Any]) -> None:
    for key in ("user_name", "source_account_upn", "source_account_name"):
        del idp[key]

    with pytest.raises(MalformedRecordError, match="neither a device nor a user"):
        normalize(idp)


@pytest.mark.parametrize("record", [[], "alert", None, 7])
def test_a_record_that_is_not_an_object_is_malformed(record: Any) -> None:
    with pytest.raises(MalformedRecordError):
        normalize(record)
