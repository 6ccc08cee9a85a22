"""needle.sources.mde.normalize: an MDE `/api/alerts` object -> Event with an OCSF Detection Finding."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from needle.model.event import (
    RAW_LIMIT_BYTES,
    DeviceHints,
    MalformedRecordError,
    pack_raw,
    unpack_raw,
)
from needle.sources.mde.normalize import normalize
from needle.sources.ocsf import MAX_FIELD_CHARS

pytestmark = pytest.mark.unit

Load = Callable[[str], dict[str, Any]]

ALERT_ID = "da638771903415527713_-583319074"
PROCESS_SHA256 = "b4e6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6"
DUMP_SHA256 = "e1c3a5f7d9b1e3c5a7f9d1b3e5c7a9f1d3b5e7c9a1f3d5b7e9c1a3f5d7b9e1c3"


@pytest.fixture
def alert(mde_alert: Load) -> dict[str, Any]:
    return mde_alert("alert_credential_dump")


def _evidence_of(finding: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [e[key] for e in finding["evidences"] if key in e]


# --- the full alert -------------------------------------------------------------------------


def test_full_alert_becomes_an_ocsf_detection_finding(alert: dict[str, Any]) -> None:
    # WHEN a full alert with Process, File and User evidence is normalized
    finding = normalize(alert).finding
    # THEN it is a Detection Finding with the alert's identity, severity and status
    assert finding["class_uid"] == 2004
    assert finding["category_uid"] == 2
    assert finding["type_uid"] == 200401
    assert finding["severity_id"] == 4
    assert finding["severity"] == "High"
    assert finding["status"] == "in_progress"
    assert finding["status_id"] == 2
    assert finding["finding_info"]["uid"] == ALERT_ID
    assert finding["finding_info"]["title"] == "LSASS memory dumped with comsvcs.dll MiniDump"
    assert finding["metadata"]["product"] == {"vendor_name": "Microsoft", "name": "Defender for Endpoint"}
    assert finding["verdict"] == "TruePositive"
    assert finding["unmapped"]["incidentId"] == 60417


def test_full_alert_times_are_epoch_milliseconds(alert: dict[str, Any]) -> None:
    info = normalize(alert).finding["finding_info"]

    assert info["created_time"] == int(
        datetime(2025, 5, 12, 14, 3, 51, 884120, tzinfo=UTC).timestamp() * 1000
    )
    assert info["first_seen_time"] == int(
        datetime(2025, 5, 12, 14, 1, 7, 331098, tzinfo=UTC).timestamp() * 1000
    )
    assert info["modified_time"] == int(
        datetime(2025, 5, 12, 14, 9, 30, 441500, tzinfo=UTC).timestamp() * 1000
    )


def test_attacks_carry_each_technique_with_the_category_tactic(alert: dict[str, Any]) -> None:
    attacks = normalize(alert).finding["finding_info"]["attacks"]

    credential_access = {"uid": "TA0006", "name": "Credential Access"}
    assert attacks == [
        {"technique": {"uid": "T1003.001"}, "tactic": credential_access},
        {"technique": {"uid": "T1218.011"}, "tactic": credential_access},
    ]


def test_process_evidence_keeps_command_line_parent_and_hashes(alert: dict[str, Any]) -> None:
    [process] = _evidence_of(normalize(alert).finding, "process")

    assert process["name"] == "rundll32.exe"
    assert process["pid"] == 10244
    assert process["cmd_line"] == (
        "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 812 C:\\ProgramData\\t.dmp full"
    )
    assert process["file"]["path"] == "C:\\Windows\\System32\\rundll32.exe"
    assert {"algorithm_id": 3, "algorithm": "SHA-256", "value": PROCESS_SHA256} in process["file"]["hashes"]
    assert process["parent_process"]["name"] == "powershell.exe"
    assert process["parent_process"]["pid"] == 8816
    # the vendor's trailing backslash on the directory is not doubled
    assert process["parent_process"]["file"]["path"] == (
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    )


def test_file_evidence_keeps_name_path_and_both_hashes(alert: dict[str, Any]) -> None:
    [file] = _evidence_of(normalize(alert).finding, "file")

    assert file["name"] == "t.dmp"
    assert file["path"] == "C:\\ProgramData\\t.dmp"
    assert {(h["algorithm"], h["algorithm_id"]) for h in file["hashes"]} == {("SHA-1", 2), ("SHA-256", 3)}
    assert {"algorithm_id": 3, "algorithm": "SHA-256", "value": DUMP_SHA256} in file["hashes"]


def test_user_evidence_and_null_fields_are_pruned(alert: dict[str, Any]) -> None:
    finding = normalize(alert).finding

    [user] = _evidence_of(finding, "user")
    assert user == {
        "name": "jdoe",
        "domain": "CORP",
        "uid": "S-1-5-21-2841036729-3390721184-1187264530-4117",
        "email_addr": "jdoe@contoso.example",
    }
    assert "null" not in json.dumps(finding), "None-valued members are left out"


def test_device_console_url_and_event_fields(alert: dict[str, Any]) -> None:
    sent = copy.deepcopy(alert)
    # WHEN the alert is normalized
    event = normalize(alert)
    # THEN the device, deep link and the typed Event fields come from the alert
    console = f"https://security.microsoft.com/alerts/{ALERT_ID}"
    assert event.finding["device"] == {
        "hostname": "eng-lt-117.corp.contoso.example",
        "uid": "9f2e7c1a4b6d8e0f3a5c7b9d1e2f4a6c8b0d2e4f",
        "groups": [{"name": "Engineering-Laptops"}],
    }
    assert event.console_url == console
    assert event.finding["finding_info"]["src_url"] == console
    assert event.source == "mde"
    assert event.vendor_id == ALERT_ID
    assert event.uid == f"mde:{ALERT_ID}"
    assert event.kind == "edr_alert"
    assert event.time == datetime(2025, 5, 12, 14, 1, 7, 331098, tzinfo=UTC)  # firstEventTime
    assert event.updated_at == datetime(2025, 5, 12, 14, 9, 30, 441500, tzinfo=UTC)
    assert event.device == DeviceHints(
        source="mde",
        device_id="9f2e7c1a4b6d8e0f3a5c7b9d1e2f4a6c8b0d2e4f",
        hostname="eng-lt-117.corp.contoso.example",
    )
    assert event.user == "CORP\\jdoe"
    assert event.process == "rundll32.exe"
    assert event.tactics == ("CredentialAccess",)
    assert event.techniques == ("T1003.001", "T1218.011")
    assert event.entity_id == ""
    # the vendor payload rides along as received, and packs for storage without loss
    assert event.raw == sent
    assert json.loads(unpack_raw(pack_raw(event.raw))) == sent


def test_event_time_falls_back_to_creation_time(alert: dict[str, Any]) -> None:
    del alert["firstEventTime"]

    assert normalize(alert).time == datetime(2025, 5, 12, 14, 3, 51, 884120, tzinfo=UTC)


# --- enums --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "severity_id", "name"),
    [
        ("UnSpecified", 0, "Unknown"),
        ("Informational", 1, "Informational"),
        ("Low", 2, "Low"),
        ("Medium", 3, "Medium"),
        ("High", 4, "High"),
        (None, 0, "Unknown"),
        ("Catastrophic", 99, "Other"),
    ],
)
def test_severity_mapping(alert: dict[str, Any], severity: str | None, severity_id: int, name: str) -> None:
    alert["severity"] = severity

    event = normalize(alert)

    assert event.severity_id == severity_id
    assert event.finding["severity_id"] == severity_id
    assert event.finding["severity"] == name


@pytest.mark.parametrize(
    ("status", "expected", "status_id"),
    [("New", "new", 1), ("InProgress", "in_progress", 2), ("Resolved", "resolved", 4), ("Unknown", "new", 1)],
)
def test_status_mapping(alert: dict[str, Any], status: str, expected: str, status_id: int) -> None:
    alert["status"] = status

    event = normalize(alert)

    assert event.status == expected
    assert event.finding["status"] == expected
    assert event.finding["status_id"] == status_id


# --- real-world quirks ---------------------------------------------------------------------------


def test_single_evidence_object_and_comma_string_techniques(mde_alert: Load) -> None:
    # GIVEN an alert whose evidence is one object, mitreTechniques a string and relatedUser null
    alert = mde_alert("alert_single_evidence_object")
    # WHEN it is normalized
    event = normalize(alert)
    # THEN the techniques are split, the one evidence row is kept and names the user
    assert event.techniques == ("T1059.001", "T1105")
    assert [a["technique"]["uid"] for a in event.finding["finding_info"]["attacks"]] == ["T1059.001", "T1105"]
    assert _evidence_of(event.finding, "user") == [
        {
            "name": "mkowalski",
            "domain": "FINANCE",
            "uid": "S-1-5-21-2841036729-3390721184-1187264530-5230",
            "email_addr": "mkowalski@contoso.example",
        }
    ]
    assert event.user == "FINANCE\\mkowalski"
    assert event.process is None


def test_user_comes_from_a_user_evidence_row_when_related_user_is_missing(alert: dict[str, Any]) -> None:
    del alert["relatedUser"]

    assert normalize(alert).user == "CORP\\jdoe"


def test_related_user_wins_over_evidence(alert: dict[str, Any]) -> None:
    alert["relatedUser"] = {"userName": "svc-backup", "domainName": "CORP"}

    assert normalize(alert).user == "CORP\\svc-backup"


def test_related_user_without_domain_and_as_plain_string(alert: dict[str, Any]) -> None:
    alert["relatedUser"] = {"userName": "jdoe", "domainName": None}
    assert normalize(alert).user == "jdoe"

    alert["relatedUser"] = "CORP\\jdoe"
    assert normalize(alert).user == "CORP\\jdoe"


def test_no_user_anywhere_gives_none(alert: dict[str, Any]) -> None:
    alert["relatedUser"] = None
    alert["evidence"] = [row for row in alert["evidence"] if row["entityType"] != "User"]

    assert normalize(alert).user is None


def test_device_may_be_named_by_hostname_or_machine_id_alone(alert: dict[str, Any]) -> None:
    only_host = {**alert, "machineId": None}
    only_id = {**alert, "computerDnsName": ""}

    assert normalize(only_host).device.hostname == "eng-lt-117.corp.contoso.example"
    assert normalize(only_host).device.device_id is None
    assert normalize(only_id).device.device_id == "9f2e7c1a4b6d8e0f3a5c7b9d1e2f4a6c8b0d2e4f"
    assert normalize(only_id).device.hostname is None


def test_unknown_evidence_type_is_kept_as_data(alert: dict[str, Any]) -> None:
    alert["evidence"] = [{"entityType": "Registry", "registryKey": "HKLM\\SOFTWARE\\Run", "sha1": None}]

    assert normalize(alert).finding["evidences"] == [
        {"data": {"entityType": "Registry", "registryKey": "HKLM\\SOFTWARE\\Run"}}
    ]


# --- malformed records ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "'id'"),
        ({"id": ""}, "'id'"),
        ({"title": None}, "'title'"),
        ({"title": "   "}, "'title'"),
        ({"machineId": None, "computerDnsName": None}, "names no device"),
        ({"machineId": "", "computerDnsName": ""}, "names no device"),
        ({"lastUpdateTime": None, "alertCreationTime": None}, "timestamp"),
        ({"firstEventTime": "not a time"}, "timestamp"),
    ],
)
def test_alert_without_what_it_needs_is_malformed(
    alert: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(MalformedRecordError, match=message):
        normalize({**alert, **change})


def test_alert_missing_keys_entirely_is_malformed(alert: dict[str, Any]) -> None:
    for key in ("id", "title"):
        broken = {k: v for k, v in alert.items() if k != key}
        with pytest.raises(MalformedRecordError):
            normalize(broken)


@pytest.mark.parametrize("value", [None, [], ["alert"], "{}", 42])
def test_non_object_input_is_malformed(value: Any) -> None:
    with pytest.raises(MalformedRecordError, match="not a JSON object"):
        normalize(value)


# --- size --------------------------------------------------------------------------------------


HUGE_COMMAND_LINE = "powershell -enc " + "QUFB" * (256 * 1024)  # attacker-sized: 1 MiB


def test_huge_command_line_keeps_raw_bounded(alert: dict[str, Any]) -> None:
    # GIVEN an attacker-sized command line (1 MiB)
    alert["evidence"][0]["processCommandLine"] = HUGE_COMMAND_LINE
    # WHEN the alert is normalized
    event = normalize(alert)
    # THEN the event keeps the whole payload in memory, but what is stored of it is cut at the
    # limit (and compresses small)
    assert event.raw is not None
    assert event.raw["evidence"][0]["processCommandLine"] == HUGE_COMMAND_LINE
    packed = pack_raw(event.raw)
    stored = unpack_raw(packed)
    assert len(stored.encode()) == RAW_LIMIT_BYTES
    assert json.dumps(alert, separators=(",", ":")).startswith(stored)
    assert len(packed) < RAW_LIMIT_BYTES


def test_huge_command_line_keeps_the_finding_storable(alert: dict[str, Any]) -> None:
    alert["evidence"][0]["processCommandLine"] = HUGE_COMMAND_LINE

    event = normalize(alert)

    # THEN the finding's copy of the command line is cut, and says how much was cut
    cmd_line = _evidence_of(event.finding, "process")[0]["cmd_line"]
    cut = len(HUGE_COMMAND_LINE) - MAX_FIELD_CHARS
    assert cmd_line == HUGE_COMMAND_LINE[:MAX_FIELD_CHARS] + f"…[{cut} more characters]"
    # AND the finding plus the packed raw payload fit in one DynamoDB item (400 KB)
    assert event.raw is not None
    assert len(json.dumps(event.finding).encode()) + len(pack_raw(event.raw)) < 400 * 1024
