"""needle.sources.graph.normalize: a Graph alerts_v2 object -> Event with an OCSF Detection Finding."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from needle.model.event import (
    RAW_LIMIT_BYTES,
    DeviceHints,
    MalformedRecordError,
    pack_raw,
    unpack_raw,
)
from needle.sources.graph.normalize import normalize
from needle.sources.ocsf import MAX_FIELD_CHARS

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "graph"
ALERT_ID = "da638791245512345678_-1873326650"
TENANT = "5e1d7c3a-2b4f-4a61-9c8e-7d6f5a4b3c2d"
DEVICE_ID = "9c2e4a6b8d0f1e3c5a7b9d1f3e5c7a9b1d3f5e7c"
EVIDENCE_TYPE = "#microsoft.graph.security."


def load(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name}.json must hold one alert object"
    return data


@pytest.fixture
def alert() -> dict[str, Any]:
    return load("alert_every_evidence_type")


def ms(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def evidence_of(alert: dict[str, Any], kind: str) -> dict[str, Any]:
    """The one evidence row of `kind` in the alert, as normalized (rows keep their order)."""
    kinds = [row["@odata.type"] for row in alert["evidence"]]
    index = kinds.index(EVIDENCE_TYPE + kind)
    evidence: dict[str, Any] = normalize(alert).finding["evidences"][index]
    return evidence


# --- the full alert -------------------------------------------------------------------------


def test_full_alert_becomes_an_ocsf_detection_finding(alert: dict[str, Any]) -> None:
    # GIVEN an MDE alert as Graph serves it, with every evidence type
    # WHEN it is normalized
    event = normalize(alert)
    finding = event.finding
    # THEN it is a Detection Finding with the alert's identity, severity, status and verdict
    assert (event.source, event.vendor_id, event.kind) == ("graph", ALERT_ID, "edr_alert")
    assert event.uid == f"graph:{ALERT_ID}"
    assert finding["class_uid"] == 2004
    assert finding["type_uid"] == 200401
    assert (finding["severity_id"], finding["severity"]) == (4, "High")
    assert (event.status, finding["status_id"]) == ("in_progress", 2)
    assert finding["finding_info"]["uid"] == ALERT_ID
    assert (
        event.title == finding["finding_info"]["title"] == "Credential dumping through comsvcs.dll MiniDump"
    )
    assert finding["metadata"]["product"] == {"vendor_name": "Microsoft", "name": "Defender for Endpoint"}
    assert finding["verdict"] == "truePositive"
    assert finding["unmapped"]["determination"] == "malware"
    assert finding["unmapped"]["incidentId"] == "73109"
    assert finding["finding_info"]["analytic"] == {
        "uid": "7b3d1f5e-9a2c-4e6b-8d0f-1a3c5e7b9d2f",
        "name": "microsoftDefenderForEndpoint",
        "type_id": 1,
    }


def test_times_come_from_activity_creation_and_last_update(alert: dict[str, Any]) -> None:
    event = normalize(alert)
    info = event.finding["finding_info"]

    # Event.time is the first activity; the cursor is lastUpdateDateTime (7 digits cut to µs).
    assert event.time == datetime(2025, 6, 17, 8, 38, 52, 104337, tzinfo=UTC)
    assert event.updated_at == datetime(2025, 6, 17, 9, 2, 44, 517000, tzinfo=UTC)
    assert info["created_time"] == ms(2025, 6, 17, 8, 41, 6) + 991
    assert info["first_seen_time"] == ms(2025, 6, 17, 8, 38, 52) + 104
    assert info["last_seen_time"] == ms(2025, 6, 17, 8, 39, 15) + 870
    assert info["modified_time"] == ms(2025, 6, 17, 9, 2, 44) + 517


def test_category_is_the_tactic_and_each_technique_an_attack(alert: dict[str, Any]) -> None:
    event = normalize(alert)

    assert event.tactics == ("CredentialAccess",)
    assert event.techniques == ("T1003.001", "T1218.011")
    credential_access = {"uid": "TA0006", "name": "Credential Access"}
    assert event.finding["finding_info"]["attacks"] == [
        {"technique": {"uid": "T1003.001"}, "tactic": credential_access},
        {"technique": {"uid": "T1218.011"}, "tactic": credential_access},
    ]


def test_console_url_is_the_alert_web_url(alert: dict[str, Any]) -> None:
    event = normalize(alert)

    assert event.console_url == f"https://security.microsoft.com/alerts/{ALERT_ID}?tid={TENANT}"
    assert event.finding["finding_info"]["src_url"] == event.console_url


@pytest.mark.parametrize("web_url", [None, "", "javascript:alert(1)", "http://security.microsoft.com/x"])
def test_console_url_is_built_when_the_web_url_is_missing_or_not_https(
    alert: dict[str, Any], web_url: str | None
) -> None:
    # GIVEN an alertWebUrl that is absent or that a report must not render as a link
    alert["alertWebUrl"] = web_url
    # WHEN it is normalized
    event = normalize(alert)
    # THEN the deep link is built from the id and tenant, as the portal spells it
    assert event.console_url == f"https://security.microsoft.com/alerts/{ALERT_ID}?tid={TENANT}"


def test_device_hints_come_from_the_first_device_evidence(alert: dict[str, Any]) -> None:
    event = normalize(alert)

    # Only addresses that identify a host survive (no loopback, link-local, junk, or repeats).
    assert event.device == DeviceHints(
        source="mde",
        device_id=DEVICE_ID,
        hostname="acct-lt-0193.contoso-labs.example",
        ips=("10.44.12.93", "2001:db8:44:12::93"),
    )
    assert event.finding["device"] == {
        "uid": DEVICE_ID,
        "hostname": "acct-lt-0193.contoso-labs.example",
        "ip": "10.44.12.93",
        "os": {"name": "Windows11", "build": "26100"},
        "groups": [{"name": "Accounting-Laptops", "uid": "41"}],
    }


def test_user_and_process_come_from_the_evidence(alert: dict[str, Any]) -> None:
    event = normalize(alert)

    assert event.user == "CONTOSO\\mtanaka"
    assert event.process == "rundll32.exe"


# --- one OCSF evidence per Graph evidence, by @odata.type -----------------------------------


def test_device_evidence(alert: dict[str, Any]) -> None:
    evidence = evidence_of(alert, "deviceEvidence")

    assert evidence["verdict"] == "suspicious"
    assert evidence["device"]["uid"] == DEVICE_ID
    assert evidence["device"]["uid_alt"] == "3f8a1c2e-6d4b-4f9a-b7e5-0c2d4e6f8a1b"
    assert evidence["device"]["risk_level"] == "high"
    assert evidence["device"]["network_interfaces"] == [{"ip": "10.44.12.93"}, {"ip": "2001:db8:44:12::93"}]
    assert evidence["data"] == {"loggedOnUsers": [{"accountName": "mtanaka", "domainName": "CONTOSO"}]}


def test_process_evidence_keeps_command_line_image_parent_and_user(alert: dict[str, Any]) -> None:
    process = evidence_of(alert, "processEvidence")["process"]

    assert process["name"] == "rundll32.exe"
    assert process["pid"] == 11208
    assert process["cmd_line"].startswith("rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 712")
    assert process["created_time_dt"] == "2025-06-17T08:38:52.0551127Z"
    assert process["file"]["path"] == "C:\\Windows\\System32\\rundll32.exe"
    assert [h["algorithm_id"] for h in process["file"]["hashes"]] == [2, 3]
    assert process["file"]["hashes"][1]["value"] == (
        "2d8f4b6a0c2e4f6a8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e"
    )
    assert process["file"]["signature"] == {
        "certificate": {"subject": "Microsoft Windows", "issuer": "Microsoft Windows Production PCA 2011"}
    }
    # The parent folder ends in a backslash on the wire; the path must not double it.
    assert process["parent_process"] == {
        "name": "powershell.exe",
        "pid": 9144,
        "created_time_dt": "2025-06-17T08:31:09.4Z",
        "file": {
            "name": "powershell.exe",
            "path": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "parent_folder": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\",
            "size": 450560,
            "company_name": "Microsoft Corporation",
        },
    }
    assert process["user"]["uid"] == "S-1-5-21-3623811015-3361044348-30300820-4417"
    assert process["user"]["email_addr"] == "mtanaka@contoso-labs.example"


def test_file_evidence(alert: dict[str, Any]) -> None:
    evidence = evidence_of(alert, "fileEvidence")

    assert evidence["verdict"] == "malicious"
    assert evidence["file"]["name"] == "t.dmp"
    assert evidence["file"]["path"] == "C:\\ProgramData\\t.dmp"
    assert evidence["file"]["size"] == 58720256
    assert {h["algorithm"] for h in evidence["file"]["hashes"]} == {"SHA-1", "SHA-256"}


def test_user_evidence(alert: dict[str, Any]) -> None:
    assert evidence_of(alert, "userEvidence")["user"] == {
        "name": "mtanaka",
        "domain": "CONTOSO",
        "uid": "S-1-5-21-3623811015-3361044348-30300820-4417",
        "uid_alt": "b2d4f6a8-c0e2-4b4d-9f6a-8c0e2b4d6f8a",
        "email_addr": "mtanaka@contoso-labs.example",
        "full_name": "Mei Tanaka",
    }


def test_ip_evidence_side_follows_its_role(alert: dict[str, Any]) -> None:
    # GIVEN a command-and-control address
    evidence = evidence_of(alert, "ipEvidence")
    # THEN it is the source end of the connection
    assert evidence["src_endpoint"] == {"ip": "203.0.113.77", "location": {"country": "NL"}}

    # AND an address without an attacking role is the destination
    [row] = [r for r in alert["evidence"] if r["@odata.type"].endswith("ipEvidence")]
    row["roles"] = ["destination"]
    assert evidence_of(alert, "ipEvidence")["dst_endpoint"]["ip"] == "203.0.113.77"


def test_url_evidence_without_a_verdict(alert: dict[str, Any]) -> None:
    # The verdict `unknown` says nothing, so it is left out.
    assert evidence_of(alert, "urlEvidence") == {
        "url": {"url_string": "https://files.example-cdn.test/upd/t.bin"}
    }


def test_registry_evidence(alert: dict[str, Any]) -> None:
    assert evidence_of(alert, "registryKeyEvidence") == {
        "reg_key": {"path": "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Lsa"}
    }
    assert evidence_of(alert, "registryValueEvidence") == {
        "reg_value": {
            "path": "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Lsa",
            "name": "DisableRestrictedAdmin",
            "type": "Dword",
            "data": "0",
        },
        "verdict": "suspicious",
    }


def test_an_unknown_evidence_type_keeps_its_own_fields(alert: dict[str, Any]) -> None:
    evidence = evidence_of(alert, "mailboxEvidence")

    assert evidence["name"] == "mailboxEvidence"
    assert evidence["data"]["primaryAddress"] == "mtanaka@contoso-labs.example"
    assert "remediationStatus" not in evidence["data"]


# --- quirks ----------------------------------------------------------------------------------


def test_replacement_characters_survive_into_the_finding_and_the_raw_payload(alert: dict[str, Any]) -> None:
    # GIVEN recommendedActions with U+FFFD where the vendor lost its bullets and apostrophe
    assert "\ufffd" in alert["recommendedActions"]
    sent = copy.deepcopy(alert)
    # WHEN it is normalized
    event = normalize(alert)
    # THEN the text is kept as sent, in the finding, in the raw payload and in its stored form
    assert event.finding["unmapped"]["recommendedActions"] == sent["recommendedActions"]
    assert event.raw == sent
    assert json.loads(unpack_raw(pack_raw(event.raw))) == sent


def test_the_input_is_not_changed(alert: dict[str, Any]) -> None:
    before = copy.deepcopy(alert)

    normalize(alert)

    assert alert == before


def test_the_docs_shaped_alert_normalizes_with_unknown_classification() -> None:
    # GIVEN the docs-sample shape: device, file, process and registry-key evidence, unclassified
    event = normalize(load("alert_hidden_file"))
    # THEN `unknown` classification and determination are no verdict, and SYSTEM is the user
    assert (event.severity_id, event.status) == (2, "new")
    assert "verdict" not in event.finding
    assert "determination" not in event.finding["unmapped"]
    assert event.device == DeviceHints(
        "mde", "51b8d3f0a2c4e6b8d0f2a4c6e8b0d2f4a6c8e0b2", "build-agent-07", ("172.16.8.27",)
    )
    assert event.user == "NT AUTHORITY\\SYSTEM"
    assert event.process == ".cache-helper.exe"
    assert event.finding["finding_info"]["types"] == ["DefenseEvasion"]


@pytest.mark.parametrize(
    ("label", "severity_id"),
    [
        ("unknown", 0),
        ("informational", 1),
        ("low", 2),
        ("medium", 3),
        ("high", 4),
        ("High", 4),
        ("unknownFutureValue", 0),
        ("critical", 99),
        (None, 0),
        (3, 0),
    ],
)
def test_severity_mapping(alert: dict[str, Any], label: Any, severity_id: int) -> None:
    alert["severity"] = label

    assert normalize(alert).severity_id == severity_id


@pytest.mark.parametrize(
    ("label", "status"),
    [
        ("new", "new"),
        ("inProgress", "in_progress"),
        ("resolved", "resolved"),
        ("unknown", "new"),
        ("unknownFutureValue", "new"),
        (None, "new"),
    ],
)
def test_status_mapping(alert: dict[str, Any], label: Any, status: str) -> None:
    alert["status"] = label

    assert normalize(alert).status == status


# --- entity: device, any mdeDeviceId, or a user ---------------------------------------------


def test_an_identity_alert_without_a_device_is_placed_on_its_user() -> None:
    # GIVEN a Defender for Identity alert naming only a user and an attacking address
    event = normalize(load("alert_identity_user_only"))
    # THEN the entity is the user (UPN, lower-cased) and the finding has no device
    assert event.device == DeviceHints("graph", "user:svc-backup@contoso-labs.example", None)
    assert "device" not in event.finding
    assert event.user == "CONTOSO\\svc-backup"
    assert event.finding["metadata"]["product"]["name"] == "Defender for Identity"
    assert event.finding["finding_info"]["attacks"][0]["technique"] == {"uid": "T1110"}
    assert "verdict" not in event.finding


def test_a_user_without_a_upn_is_keyed_by_account_name() -> None:
    alert = load("alert_identity_user_only")
    alert["evidence"][0]["userAccount"]["userPrincipalName"] = None

    assert normalize(alert).device.device_id == "user:svc-backup"


def test_without_device_evidence_any_mde_device_id_places_the_alert(alert: dict[str, Any]) -> None:
    # GIVEN an alert whose device evidence is missing but whose process evidence names the device
    alert["evidence"] = [r for r in alert["evidence"] if not r["@odata.type"].endswith("deviceEvidence")]
    # THEN that MDE device id is the entity, so it still unifies with the MDE connector
    event = normalize(alert)
    assert event.device == DeviceHints("mde", DEVICE_ID, None)
    assert event.finding["device"] == {"uid": DEVICE_ID}


def test_a_device_evidence_without_identity_is_skipped_for_the_next(alert: dict[str, Any]) -> None:
    anonymous = {"@odata.type": EVIDENCE_TYPE + "deviceEvidence", "mdeDeviceId": None, "deviceDnsName": ""}
    alert["evidence"].insert(0, anonymous)

    assert normalize(alert).device.device_id == DEVICE_ID


# --- malformed records and usable oddities ---------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": None}, "id"),
        ({"id": "  "}, "id"),
        ({"lastUpdateDateTime": None}, "timestamp"),
        ({"lastUpdateDateTime": "yesterday"}, "timestamp"),
        ({"evidence": []}, "neither a device nor a user"),
    ],
)
def test_records_that_cannot_be_alerts_are_malformed(
    alert: dict[str, Any], change: dict[str, Any], reason: str
) -> None:
    alert.update(change)

    with pytest.raises(MalformedRecordError, match=reason):
        normalize(alert)


@pytest.mark.parametrize("record", [[], "alert", None])
def test_a_record_that_is_not_an_object_is_malformed(record: Any) -> None:
    with pytest.raises(MalformedRecordError):
        normalize(record)


def test_a_single_evidence_object_instead_of_a_list_is_used(alert: dict[str, Any]) -> None:
    alert["evidence"] = alert["evidence"][0]

    event = normalize(alert)

    assert event.device.device_id == DEVICE_ID
    assert len(event.finding["evidences"]) == 1


def test_bad_optional_fields_are_dropped_not_fatal(alert: dict[str, Any]) -> None:
    # GIVEN an alert with a broken activity time, no creation time, no title and odd evidence
    alert["firstActivityDateTime"] = "not a time"
    alert["createdDateTime"] = None
    alert["title"] = ""
    alert["mitreTechniques"] = "T1003.001, T1218.011"
    alert["evidence"].append("not an object")
    alert["evidence"].append({"verdict": "malicious"})
    # WHEN it is normalized
    event = normalize(alert)
    # THEN times fall back to the update time, the title to the threat name, and nothing is lost
    assert event.time == event.updated_at
    assert event.title == "Mimikatz-like credential theft"
    assert event.techniques == ("T1003.001", "T1218.011")
    assert event.finding["evidences"][-1] == {"verdict": "malicious"}


def test_a_huge_command_line_still_normalizes_and_raw_stays_bounded(alert: dict[str, Any]) -> None:
    # GIVEN a command line larger than the raw payload limit
    [process] = [r for r in alert["evidence"] if r["@odata.type"].endswith("processEvidence")]
    huge = "powershell -enc " + "A" * (RAW_LIMIT_BYTES * 2)
    process["processCommandLine"] = huge
    # WHEN it is normalized
    event = normalize(alert)
    # THEN the event carries the payload whole, what is stored of it is cut at the limit ...
    assert event.raw == alert
    stored = unpack_raw(pack_raw(event.raw))
    assert len(stored.encode()) == RAW_LIMIT_BYTES
    assert json.dumps(alert, separators=(",", ":")).startswith(stored)
    # ... and the finding still names the command, cut at the field limit with a note of the rest
    cmd_line = evidence_of(alert, "processEvidence")["process"]["cmd_line"]
    assert cmd_line.startswith("powershell -enc AAAA")
    assert cmd_line == huge[:MAX_FIELD_CHARS] + f"…[{len(huge) - MAX_FIELD_CHARS} more characters]"
