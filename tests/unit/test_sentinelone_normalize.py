"""needle.sources.sentinelone.normalize: a `/threats` element -> Event with an OCSF Detection Finding."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from needle.model.event import DeviceHints, MalformedRecordError, pack_raw, unpack_raw
from needle.sources.sentinelone.normalize import cursor_of, normalize, severity_of

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sentinelone"
CONSOLE = "https://usea1-northwind.sentinelone.net"
THREAT_ID = "2241902215567120391"
AGENT_ID = "2241190034487712208"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def ms(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int) -> int:
    return int(datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def threat() -> dict[str, Any]:
    data: dict[str, Any] = load("threat_credential_dump")
    return data


@pytest.fixture
def redacted() -> dict[str, Any]:
    data: dict[str, Any] = load("threat_redacted_macos")
    return data


def evidence(finding: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [e[key] for e in finding["evidences"] if key in e]


# --- a full threat ------------------------------------------------------------------------------


def test_full_threat_becomes_a_detection_finding(threat: dict[str, Any]) -> None:
    # WHEN a full v2.1 threat is normalized
    event = normalize(threat, CONSOLE)
    # THEN it is a Detection Finding named by the threat, with the derived severity and status
    finding = event.finding
    assert finding["class_uid"] == 2004
    assert finding["type_uid"] == 200401
    assert finding["finding_info"]["uid"] == THREAT_ID
    assert finding["finding_info"]["title"] == "rundll32.exe"
    assert finding["severity_id"] == 5, "malicious Infostealer, not mitigated"
    assert finding["severity"] == "Critical"
    assert finding["status"] == "new"
    assert finding["metadata"]["product"] == {"vendor_name": "SentinelOne", "name": "Singularity Endpoint"}
    assert finding["finding_info"]["analytic"] == {
        "uid": "executables",
        "name": "Behavioral AI",
        "type_id": 2,
        "type": "Behavioral",
    }
    assert finding["finding_info"]["desc"].startswith("Process opened a handle to LSASS")
    assert "verdict" not in finding, "analystVerdict 'undefined' is no verdict"


def test_event_fields_and_console_link(threat: dict[str, Any]) -> None:
    sent = copy.deepcopy(threat)
    event = normalize(threat, CONSOLE)

    link = f"{CONSOLE}/incidents/threats/{THREAT_ID}/overview"
    assert event.console_url == link
    assert event.finding["finding_info"]["src_url"] == link
    assert event.source == "sentinelone"
    assert event.vendor_id == THREAT_ID
    assert event.uid == f"sentinelone:{THREAT_ID}"
    assert event.kind == "edr_alert"
    assert event.title == "rundll32.exe"
    assert event.user == "NORTHWIND\\amoreau"
    assert event.process == "powershell.exe"
    # the vendor payload rides along as received, and packs for storage without loss
    assert event.raw == sent
    assert json.loads(unpack_raw(pack_raw(event.raw))) == sent


def test_times_come_from_identified_created_and_updated(threat: dict[str, Any]) -> None:
    event = normalize(threat, CONSOLE)

    assert event.time == datetime(2025, 6, 3, 8, 22, 40, 118000, tzinfo=UTC)  # identifiedAt
    assert event.updated_at == datetime(2025, 6, 3, 8, 22, 44, 270581, tzinfo=UTC)
    info = event.finding["finding_info"]
    assert info["created_time"] == ms(2025, 6, 3, 8, 22, 43, 601277)
    assert info["first_seen_time"] == ms(2025, 6, 3, 8, 22, 40, 118000)
    assert info["modified_time"] == ms(2025, 6, 3, 8, 22, 44, 270581)


def test_event_time_falls_back_to_created_at(threat: dict[str, Any]) -> None:
    threat["threatInfo"]["identifiedAt"] = None

    assert normalize(threat, CONSOLE).time == datetime(2025, 6, 3, 8, 22, 43, 601277, tzinfo=UTC)


def test_tactics_and_techniques_come_from_indicators_deduplicated(threat: dict[str, Any]) -> None:
    event = normalize(threat, CONSOLE)

    assert event.tactics == ("Credential Access", "Defense Evasion")
    assert event.techniques == ("T1003.001", "T1218.011")
    credential_access = {"uid": "TA0006", "name": "Credential Access"}
    assert event.finding["finding_info"]["attacks"] == [
        {"technique": {"uid": "T1003.001"}, "tactic": credential_access},
        {"technique": {"uid": "T1218.011"}, "tactic": credential_access},
    ]


def test_device_hints_name_the_agent_and_its_routable_addresses(threat: dict[str, Any]) -> None:
    event = normalize(threat, CONSOLE)

    # loopback and link-local addresses are shared by every host: never an identity
    assert event.device == DeviceHints(
        source="sentinelone",
        device_id=AGENT_ID,
        hostname="NW-LT-0193",
        ips=("10.44.18.73", "2001:db8:4410:18::73"),
    )
    device = event.finding["device"]
    assert device["uid"] == AGENT_ID
    assert device["hostname"] == "NW-LT-0193"
    assert device["domain"] == "NORTHWIND"
    assert device["os"] == {"name": "Windows 11 Pro", "version": "22631", "type": "windows", "type_id": 100}
    assert device["groups"] == [{"name": "Sales Laptops", "uid": "2241187650202236311"}]
    assert device["network_interfaces"] == [{"name": "Wi-Fi", "mac": "3C-A9-F4-12-7B-0E"}]
    assert device["agent_list"][0]["uid"] == "9c41e7d2b05a4f3e8d16a2c7b9e0f531"


def test_external_ip_is_kept_but_never_identifies_the_device(threat: dict[str, Any]) -> None:
    event = normalize(threat, CONSOLE)

    assert "198.51.100.23" not in event.device.ips
    assert event.finding["unmapped"]["externalIp"] == "198.51.100.23"


def test_file_and_process_evidence(threat: dict[str, Any]) -> None:
    finding = normalize(threat, CONSOLE).finding

    [file] = evidence(finding, "file")
    assert file == {
        "name": "rundll32.exe",
        "path": "\\Device\\HarddiskVolume3\\Windows\\System32\\rundll32.exe",
        "hashes": [
            {"algorithm_id": 2, "algorithm": "SHA-1", "value": "7d1e9f2a4c6b8d0e1f3a5c7e9b1d3f5a7c9e1b3d"}
        ],
        "size": 71680,
    }
    [process] = evidence(finding, "process")
    assert process == {
        "name": "powershell.exe",
        "cmd_line": (
            "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 704 C:\\Users\\Public\\m.dmp full"
        ),
        "user": {"name": "NORTHWIND\\amoreau"},
    }
    assert "null" not in json.dumps(finding), "None-valued members are left out"


def test_unmapped_keeps_the_vendor_state(threat: dict[str, Any]) -> None:
    unmapped = normalize(threat, CONSOLE).finding["unmapped"]

    assert unmapped["classification"] == "Infostealer"
    assert unmapped["confidenceLevel"] == "malicious"
    assert unmapped["mitigationStatus"] == "not_mitigated"
    assert unmapped["mitigationActions"] == [
        {"action": "kill", "status": "success", "at": "2025-06-03T08:22:41.915204Z"}
    ]
    assert unmapped["storyline"] == "5E2A91C7D03F4B18"
    assert unmapped["agentNetworkStatus"] == "connected"
    assert unmapped["agentDecommissioned"] is False


# --- severity, status and verdict ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "classification", "mitigation", "expected"),
    [
        ("malicious", "Trojan", "not_mitigated", 4),
        ("malicious", "Malware", "mitigated", 4),
        ("suspicious", "Malware", "not_mitigated", 3),
        ("n/a", "Malware", "not_mitigated", 2),
        (None, "Malware", "not_mitigated", 0),
        ("bogus", "Malware", "not_mitigated", 0),
        ("malicious", "Ransomware", "not_mitigated", 5),
        ("malicious", "Ransomware", "mitigated", 4),
        ("suspicious", "Exploit", "not_mitigated", 4),
        ("malicious", "PUA", "not_mitigated", 2),
        ("suspicious", "Adware", "not_mitigated", 2),
        ("n/a", "PUA", "not_mitigated", 2),
        ("malicious", "Ransomware", "marked_as_benign", 1),
    ],
)
def test_severity_is_derived_from_confidence_classification_and_mitigation(
    threat: dict[str, Any], confidence: str | None, classification: str, mitigation: str, expected: int
) -> None:
    info = threat["threatInfo"]
    info.update(confidenceLevel=confidence, classification=classification, mitigationStatus=mitigation)

    event = normalize(threat, CONSOLE)

    assert event.severity_id == expected
    assert event.finding["severity_id"] == expected


def test_severity_matching_ignores_case() -> None:
    assert severity_of("malicious", "ransomware", "not_mitigated") == 5
    assert normalize_classification("RANSOMWARE") == 5


def normalize_classification(classification: str) -> int:
    threat: dict[str, Any] = load("threat_credential_dump")
    threat["threatInfo"]["classification"] = classification
    return normalize(threat, CONSOLE).severity_id


@pytest.mark.parametrize(
    ("incident", "mitigation", "expected", "status_id"),
    [
        ("unresolved", "not_mitigated", "new", 1),
        ("in_progress", "mitigated", "in_progress", 2),
        ("resolved", "mitigated", "resolved", 4),
        ("unresolved", "marked_as_benign", "suppressed", 3),
        ("resolved", "marked_as_benign", "resolved", 4),
        (None, "not_mitigated", "new", 1),
    ],
)
def test_status_from_incident_and_mitigation_status(
    threat: dict[str, Any], incident: str | None, mitigation: str, expected: str, status_id: int
) -> None:
    threat["threatInfo"].update(incidentStatus=incident, mitigationStatus=mitigation)

    finding = normalize(threat, CONSOLE).finding

    assert finding["status"] == expected
    assert finding["status_id"] == status_id


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ("true_positive", "True Positive"),
        ("false_positive", "False Positive"),
        ("suspicious", "Suspicious"),
        ("undefined", None),
        ("needs_review", "needs_review"),
    ],
)
def test_analyst_verdict(threat: dict[str, Any], verdict: str, expected: str | None) -> None:
    threat["threatInfo"]["analystVerdict"] = verdict

    assert normalize(threat, CONSOLE).finding.get("verdict") == expected


# --- real-world quirks ----------------------------------------------------------------------------


def test_redacted_values_are_no_identity(redacted: dict[str, Any]) -> None:
    # GIVEN a sanitised macOS threat: agentId, agentUuid, threatId and user names are "REDACTED"
    # WHEN it is normalized
    event = normalize(redacted, CONSOLE)
    # THEN the device is named by its hostname only, never by the shared placeholder
    assert event.device.device_id is None
    assert event.device.hostname == "Design-MBP-17"
    assert event.user is None
    assert event.vendor_id == "2301779904115527680"
    assert event.console_url == f"{CONSOLE}/incidents/threats/2301779904115527680/overview"
    assert "uid" not in event.finding["device"]
    assert event.finding["unmapped"]["threatId"] == "REDACTED"


def test_comma_separated_detection_addresses_are_split_and_filtered(redacted: dict[str, Any]) -> None:
    event = normalize(redacted, CONSOLE)

    assert event.device.ips == ("192.168.77.41", "172.30.8.19", "2001:db8:77::41", "2001:db8:77::42")


def test_redacted_threat_times_severity_and_mitigation(redacted: dict[str, Any]) -> None:
    event = normalize(redacted, CONSOLE)

    assert event.time == datetime(2025, 2, 11, 19, 5, 31, tzinfo=UTC)  # identifiedAt without fraction
    assert event.severity_id == 3  # suspicious Malware
    assert event.status == "new"
    assert event.techniques == ()
    assert event.process == "Archive Utility"
    assert event.finding["finding_info"]["analytic"]["type_id"] == 99
    [file] = evidence(event.finding, "file")
    assert [h["algorithm"] for h in file["hashes"]] == ["SHA-1", "SHA-256"]
    assert "size" not in file, "a zero fileSize is unknown, not empty"


def test_whole_response_with_boolean_decommissioned_at_normalizes_every_element() -> None:
    # GIVEN a whole `/threats` response without pagination, agentDecommissionedAt a boolean
    response = load("threats_response_decommissioned")
    # WHEN each element is normalized
    events = [normalize(raw, CONSOLE) for raw in response["data"]]
    # THEN all normalize, the agent reads as decommissioned and the analyst's verdict is kept
    assert [e.vendor_id for e in events] == ["703118842901774482", "703118907743317705"]
    for event in events:
        assert event.device == DeviceHints("sentinelone", "688120551230419455", "LAB-SRV-12", ("192.0.2.61",))
        assert event.finding["unmapped"]["agentDecommissioned"] is True
        assert event.finding.get("verdict") == "False Positive"
        assert event.status == "resolved"
        assert event.severity_id == 2  # PUA
        assert event.process is None
    assert events[0].user == "LAB-SRV-12\\labadmin"
    assert events[1].user is None


@pytest.mark.parametrize("stamp", [None, False, "2025-01-01T00:00:00.000000Z"])
def test_decommissioned_at_of_any_shape(threat: dict[str, Any], stamp: Any) -> None:
    threat["agentRealtimeInfo"].update(agentDecommissionedAt=stamp, agentIsDecommissioned=None)

    expected = None if stamp is None else stamp is not False
    assert normalize(threat, CONSOLE).finding["unmapped"].get("agentDecommissioned") == expected


def test_id_differing_from_threat_id_keeps_the_top_level_id(threat: dict[str, Any]) -> None:
    threat["threatInfo"]["threatId"] = "123456789"

    assert normalize(threat, CONSOLE).vendor_id == THREAT_ID


def test_techniques_named_by_title_are_read_from_their_link(threat: dict[str, Any]) -> None:
    threat["indicators"] = [
        {
            "tactics": [
                {
                    "name": "Execution",
                    "techniques": [
                        {"name": "PowerShell", "link": "https://attack.mitre.org/techniques/T1059/001/"},
                        {"name": "Native API", "link": "https://attack.mitre.org/techniques/T1106"},
                        {"name": "Unknown", "link": None},
                        "T1204",
                    ],
                }
            ]
        }
    ]

    assert normalize(threat, CONSOLE).techniques == ("T1059.001", "T1106")


@pytest.mark.parametrize(
    "indicators", [None, "n/a", [None, {"tactics": None}, {"tactics": [None, {"techniques": "x"}]}]]
)
def test_odd_indicator_shapes_are_ignored(threat: dict[str, Any], indicators: Any) -> None:
    threat["indicators"] = indicators

    event = normalize(threat, CONSOLE)

    assert event.tactics == ()
    assert event.techniques == ()


def test_title_falls_back_to_the_file_name_then_classification(threat: dict[str, Any]) -> None:
    threat["threatInfo"]["threatName"] = None
    assert normalize(threat, CONSOLE).title == "rundll32.exe"

    threat["threatInfo"]["filePath"] = None
    assert normalize(threat, CONSOLE).title == "Infostealer"


def test_unparseable_secondary_times_are_dropped(threat: dict[str, Any]) -> None:
    threat["threatInfo"].update(createdAt="yesterday", identifiedAt=12)

    event = normalize(threat, CONSOLE)

    assert event.time == event.updated_at


def test_api_2_0_flat_threat_normalizes() -> None:
    flat = {
        "id": "1049581109931118224",
        "threatName": "invoice.js",
        "classification": "Malware",
        "confidenceLevel": "malicious",
        "mitigationStatus": "mitigated",
        "resolved": True,
        "createdAt": "2020-12-01T10:00:00.000000Z",
        "updatedAt": "2020-12-01T10:05:00.000000Z",
        "agentId": "1049580000000000001",
        "agentComputerName": "ACC-WS-02",
    }

    event = normalize(flat, CONSOLE)

    assert event.device.device_id == "1049580000000000001"
    assert event.status == "resolved"
    assert event.updated_at == datetime(2020, 12, 1, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("console", "expected"),
    [
        ("https://usea1-northwind.sentinelone.net/", "https://usea1-northwind.sentinelone.net"),
        ("https://usea1-northwind.sentinelone.net/web/api/v2.1", "https://usea1-northwind.sentinelone.net"),
        ("usea1-northwind.sentinelone.net", "https://usea1-northwind.sentinelone.net"),
        ("http://127.0.0.1:8443", "http://127.0.0.1:8443"),
    ],
)
def test_console_link_uses_the_console_host(threat: dict[str, Any], console: str, expected: str) -> None:
    assert normalize(threat, console).console_url == f"{expected}/incidents/threats/{THREAT_ID}/overview"


def test_cursor_of_reads_threat_info_updated_at(threat: dict[str, Any]) -> None:
    assert cursor_of(threat) == datetime(2025, 6, 3, 8, 22, 44, 270581, tzinfo=UTC)
    assert cursor_of({"updatedAt": "2020-12-01T10:05:00Z"}) == datetime(2020, 12, 1, 10, 5, tzinfo=UTC)
    with pytest.raises(MalformedRecordError):
        cursor_of({"threatInfo": {}})


# --- malformed records -------------------------------------------------------------------------------


def _without(record: dict[str, Any], *path: str) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    holder = copied
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return copied


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: _without(t, "id"), "id"),
        (lambda t: {**t, "id": "  "}, "id"),
        (lambda t: {**t, "id": "REDACTED"}, "id"),
        (lambda t: _without(t, "threatInfo", "updatedAt"), "timestamp"),
        (lambda t: {**t, "threatInfo": {**t["threatInfo"], "updatedAt": "not a time"}}, "timestamp"),
        (lambda t: {**t, "threatInfo": {**t["threatInfo"], "updatedAt": 1717402964}}, "timestamp"),
        (
            lambda t: {
                **t,
                "agentRealtimeInfo": {"agentId": None, "agentUuid": "REDACTED", "agentComputerName": ""},
                "agentDetectionInfo": {"agentUuid": None},
            },
            "device",
        ),
        (lambda t: ["not", "an", "object"], "object"),
    ],
    ids=[
        "no-id",
        "blank-id",
        "redacted-id",
        "no-updated",
        "bad-updated",
        "numeric-updated",
        "no-device",
        "not-object",
    ],
)
def test_records_that_cannot_be_alerts_are_malformed(
    threat: dict[str, Any], mutate: Any, reason: str
) -> None:
    with pytest.raises(MalformedRecordError, match=reason):
        normalize(mutate(threat), CONSOLE)


def test_a_device_named_by_agent_uuid_alone_is_enough(threat: dict[str, Any]) -> None:
    threat["agentRealtimeInfo"].update(agentId=None, agentComputerName=None)

    event = normalize(threat, CONSOLE)

    assert event.device.device_id == "9c41e7d2b05a4f3e8d16a2c7b9e0f531"
    assert event.device.hostname is None
