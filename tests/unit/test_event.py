"""needle.model.event: vendor timestamps, sortable ISO strings, bounded raw payloads, Event keys."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from needle.model.event import (
    RAW_LIMIT_BYTES,
    DeviceHints,
    Event,
    MalformedRecordError,
    iso,
    pack_raw,
    parse_time,
    unpack_raw,
)

pytestmark = pytest.mark.unit


def make_event(**overrides: Any) -> Event:
    base = Event(
        source="mde",
        vendor_id="da638771903415527713_-583319074",
        kind="edr_alert",
        time=datetime(2025, 5, 12, 14, 1, 7, 331098, tzinfo=UTC),
        updated_at=datetime(2025, 5, 12, 14, 9, 30, tzinfo=UTC),
        title="LSASS memory dumped with comsvcs.dll MiniDump",
        severity_id=4,
        status="new",
        tactics=("CredentialAccess",),
        techniques=("T1003.001",),
        device=DeviceHints(source="mde", device_id="9f2e7c1a", hostname="eng-lt-117"),
        user="CORP\\jdoe",
        process="rundll32.exe",
        console_url="https://security.microsoft.com/alerts/da638771903415527713_-583319074",
        finding={"class_uid": 2004, "status": "new", "finding_info": {"title": "LSASS", "uid": "x"}},
    )
    return replace(base, **overrides)


# --- parse_time ---------------------------------------------------------------------------


def test_parse_time_accepts_seven_fractional_digits_and_z() -> None:
    # GIVEN an MDE timestamp with 100 ns precision
    # WHEN it is parsed
    moment = parse_time("2025-05-12T14:03:51.8841207Z")
    # THEN it is aware UTC, truncated to microseconds
    assert moment == datetime(2025, 5, 12, 14, 3, 51, 884120, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-05-12T14:03:51Z", datetime(2025, 5, 12, 14, 3, 51, tzinfo=UTC)),
        ("2025-05-12T14:03:51.03z", datetime(2025, 5, 12, 14, 3, 51, 30000, tzinfo=UTC)),
        ("2025-05-12T16:03:51.8841207+02:00", datetime(2025, 5, 12, 14, 3, 51, 884120, tzinfo=UTC)),
        ("2025-05-12T08:33:51-05:30", datetime(2025, 5, 12, 14, 3, 51, tzinfo=UTC)),
        ("2025-05-12T14:03:51.5+00:00", datetime(2025, 5, 12, 14, 3, 51, 500000, tzinfo=UTC)),
        (" 2025-05-12T14:03:51Z ", datetime(2025, 5, 12, 14, 3, 51, tzinfo=UTC)),
    ],
)
def test_parse_time_normalizes_z_and_offsets_to_utc(text: str, expected: datetime) -> None:
    moment = parse_time(text)

    assert moment == expected
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2025-05-12T14:03:51Z",
        "2025-05-12T14:03:51.8Z",
        "2025-05-12T14:03:51.884120Z",
        "2025-05-12T14:03:51.8841207Z",
        "2025-05-12T14:03:51.884120736Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.9999999Z",
    ],
)
def test_parse_time_reads_the_vendor_shape_as_the_same_instant_with_an_offset(text: str) -> None:
    # GIVEN the shape vendors send (`Z`, up to 9 fractional digits), which parses without the
    # general clean-up, and the same instant written with an offset, which takes it
    # THEN both parse to the same aware UTC datetime
    moment = parse_time(text)

    assert moment == parse_time(text[:-1] + "+00:00")
    assert moment.tzinfo is UTC


def test_parse_time_names_the_timestamp_as_sent_when_the_vendor_shape_is_invalid() -> None:
    with pytest.raises(MalformedRecordError, match=r"'2025-02-29T00:00:00\.1234567Z'"):
        parse_time("2025-02-29T00:00:00.1234567Z")


def test_parse_time_treats_a_naive_timestamp_as_utc() -> None:
    moment = parse_time("2025-05-12T14:03:51.8841207")

    assert moment == datetime(2025, 5, 12, 14, 3, 51, 884120, tzinfo=UTC)
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "yesterday",
        "2025-13-01T00:00:00Z",
        "2025-05-12T25:00:00Z",
        "12/05/2025 14:03",
        1747058631,
        {},
    ],
)
def test_parse_time_rejects_garbage_as_malformed_record(value: Any) -> None:
    with pytest.raises(MalformedRecordError):
        parse_time(value)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_time_rejects_out_of_range_instant_as_malformed_record(value: str) -> None:
    # GIVEN an instant that is valid where it was written but falls outside datetime's range in UTC
    # WHEN it is parsed
    # THEN it is a malformed record (quarantined), not a stray OverflowError
    with pytest.raises(MalformedRecordError, match="unparseable timestamp") as caught:
        parse_time(value)
    assert isinstance(caught.value.__cause__, OverflowError)


# --- iso ------------------------------------------------------------------------------------


def test_iso_is_fixed_width_utc_with_milliseconds() -> None:
    moment = datetime(2025, 5, 12, 16, 3, 51, 884120, tzinfo=timezone(timedelta(hours=2)))

    assert iso(moment) == "2025-05-12T14:03:51.884Z"


def test_iso_string_order_is_time_order() -> None:
    # GIVEN instants in mixed offsets, some with and some without fractions
    plus_two = timezone(timedelta(hours=2))
    minus_five = timezone(timedelta(hours=-5))
    moments = [
        datetime(2025, 5, 12, 16, 0, 0, tzinfo=plus_two),  # 14:00:00Z
        datetime(2025, 5, 12, 14, 0, 0, 5000, tzinfo=UTC),  # 14:00:00.005Z
        datetime(2025, 5, 12, 9, 0, 0, 999999, tzinfo=minus_five),  # 14:00:00.999Z
        datetime(2025, 5, 12, 13, 59, 59, 999000, tzinfo=UTC),
        datetime(2025, 5, 13, 0, 0, 0, tzinfo=UTC),
        datetime(2025, 5, 12, 23, 59, 59, tzinfo=minus_five),  # 04:59:59Z next day
    ]
    # WHEN they are rendered
    rendered = [iso(m) for m in moments]
    # THEN every string has the same width and sorting strings sorts instants
    assert {len(r) for r in rendered} == {len("2025-05-12T14:00:00.000Z")}
    assert sorted(rendered) == [iso(m) for m in sorted(moments)]


def test_iso_stays_fixed_width_for_the_dotnet_minimum_date() -> None:
    # .NET serializes DateTime.MinValue as 0001-01-01T00:00:00Z, and parse_time accepts it
    rendered = iso(parse_time("0001-01-01T00:00:00Z"))

    assert rendered == "0001-01-01T00:00:00.000Z"
    assert len(rendered) == len("2025-05-12T14:00:00.000Z")
    assert rendered < iso(datetime(999, 12, 31, tzinfo=UTC)) < iso(datetime(2025, 5, 12, tzinfo=UTC))


# --- pack_raw / unpack_raw --------------------------------------------------------------------


def test_pack_raw_round_trips_a_payload() -> None:
    payload = {"id": "da63877_1", "title": "Zürich ✓", "evidence": [{"processId": 10244, "sha1": None}]}

    blob = pack_raw(payload)

    assert json.loads(unpack_raw(blob)) == payload
    assert pack_raw(payload) == blob, "compression is deterministic (no mtime in the header)"


def test_pack_raw_keeps_a_payload_exactly_at_the_limit() -> None:
    # {"k":"xxx..."} is 8 bytes of framing plus the string
    payload = {"k": "x" * (RAW_LIMIT_BYTES - 8)}

    text = unpack_raw(pack_raw(payload))

    assert len(text.encode()) == RAW_LIMIT_BYTES
    assert json.loads(text) == payload


def test_pack_raw_cuts_a_payload_over_the_limit() -> None:
    # GIVEN a payload one byte over the limit, and one far over it
    payload = {"k": "x" * (RAW_LIMIT_BYTES - 7)}
    huge = {"processCommandLine": "A" * (5 * RAW_LIMIT_BYTES)}
    # WHEN they are packed
    cut = unpack_raw(pack_raw(payload))
    cut_huge = unpack_raw(pack_raw(huge))
    # THEN the stored text is the first RAW_LIMIT_BYTES of the serialized payload
    assert len(cut.encode()) == RAW_LIMIT_BYTES
    assert json.dumps(payload, separators=(",", ":")).startswith(cut)
    assert len(cut_huge.encode()) == RAW_LIMIT_BYTES
    assert cut_huge.startswith('{"processCommandLine":"AAAA')


# --- Event keys -----------------------------------------------------------------------------


def test_uid_is_source_and_vendor_id() -> None:
    assert make_event().uid == "mde:da638771903415527713_-583319074"


def test_sort_key_is_time_then_kind_then_uid() -> None:
    event = make_event()

    assert event.sort_key == "2025-05-12T14:01:07.331Z#edr_alert#mde:da638771903415527713_-583319074"


def test_sort_keys_order_events_by_time() -> None:
    # GIVEN events whose vendor ids sort opposite to their times
    early = make_event(vendor_id="zzz", time=datetime(2025, 5, 12, 9, 0, tzinfo=UTC))
    late = make_event(vendor_id="aaa", time=datetime(2025, 5, 12, 13, 0, tzinfo=timezone(timedelta(hours=2))))

    assert early.sort_key < late.sort_key


def test_severity_names_known_ids_and_other() -> None:
    assert make_event(severity_id=0).severity == "Unknown"
    assert make_event(severity_id=4).severity == "High"
    assert make_event(severity_id=99).severity == "Other"


def test_content_hash_is_stable_across_key_order_and_bare_re_polls() -> None:
    # GIVEN the same finding built twice with different key order, seen at different poll times
    one = make_event(finding={"a": 1, "b": {"x": [1, 2], "y": None}})
    two = make_event(
        finding={"b": {"y": None, "x": [1, 2]}, "a": 1},
        updated_at=datetime(2025, 5, 12, 15, 0, tzinfo=UTC),
        raw={"id": "da638771903415527713_-583319074", "lastUpdateTime": "2025-05-12T15:00:00Z"},
    )
    # THEN the hash is the same and looks like 32 hex characters
    assert one.content_hash() == two.content_hash()
    assert re.fullmatch(r"[0-9a-f]{32}", one.content_hash())


@pytest.mark.parametrize(
    "changed",
    [
        {"class_uid": 2004, "status": "resolved", "finding_info": {"title": "LSASS", "uid": "x"}},
        {"class_uid": 2004, "status": "new", "finding_info": {"title": "LSASS (2)", "uid": "x"}},
        {"class_uid": 2004, "status": "new", "finding_info": {"title": "LSASS", "uid": "x"}, "verdict": "tp"},
    ],
)
def test_content_hash_changes_when_the_finding_changes(changed: dict[str, Any]) -> None:
    assert make_event(finding=changed).content_hash() != make_event().content_hash()


# --- material_hash: what re-triggers scoring and investigation -----------------------------

FINDING: dict[str, Any] = {
    "class_uid": 2004,
    "status": "new",
    "status_id": 1,
    "verdict": None,
    "severity_id": 4,
    "finding_info": {
        "uid": "x",
        "title": "LSASS",
        "modified_time": 1,
        "last_seen_time": 1,
        "attacks": [{"technique": {"uid": "T1003.001"}}],
    },
    "device": {"uid": "9f2e7c1a", "hostname": "eng-lt-117", "ip": "10.1.2.3", "risk_level": "low"},
    "evidences": [
        {"process": {"name": "rundll32.exe"}},
        {"device": {"uid": "9f2e7c1a", "risk_level": "low"}},
    ],
    "unmapped": {"assignedTo": None, "determination": None},
}


def _revised(change: dict[str, Any]) -> Event:
    finding = json.loads(json.dumps(FINDING))
    for path, value in change.items():
        *parents, leaf = path.split(".")
        node = finding
        for name in parents:
            node = node[int(name)] if isinstance(node, list) else node[name]
        node[leaf] = value
    return make_event(finding=finding)


@pytest.mark.parametrize(
    "workflow",
    [
        {"status": "resolved", "status_id": 4},
        {"verdict": "True positive"},
        {"finding_info.modified_time": 2, "finding_info.last_seen_time": 2},
        {"unmapped.assignedTo": "analyst@example.com", "unmapped.determination": "malware"},
        {"device.ip": "10.9.9.9", "device.risk_level": "high"},
        {"evidences.1.device.risk_level": "high", "evidences.0.verdict": "malicious"},
    ],
)
def test_workflow_changes_are_not_material(workflow: dict[str, Any]) -> None:
    assert _revised(workflow).content_hash() != make_event(finding=FINDING).content_hash()
    assert _revised(workflow).material_hash() == make_event(finding=FINDING).material_hash()


@pytest.mark.parametrize(
    "detection",
    [
        {"finding_info.title": "LSASS memory read by an unsigned tool"},
        {"finding_info.attacks": [{"technique": {"uid": "T1003.001"}}, {"technique": {"uid": "T1021.002"}}]},
        {"evidences": [{"process": {"name": "rundll32.exe"}}, {"file": {"name": "dump.bin"}}]},
        {"device.hostname": "eng-lt-118"},
    ],
)
def test_what_the_detection_says_is_material(detection: dict[str, Any]) -> None:
    assert _revised(detection).material_hash() != make_event(finding=FINDING).material_hash()
