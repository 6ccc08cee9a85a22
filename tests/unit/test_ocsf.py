"""needle.sources.ocsf: the finding builders, and the bound they keep for every normalizer."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from needle.model.event import DeviceHints, Event, MalformedRecordError
from needle.sources.crowdstrike.normalize import normalize as crowdstrike
from needle.sources.graph.normalize import normalize as graph
from needle.sources.mde.normalize import normalize as mde
from needle.sources.ocsf import (
    MAX_FIELD_CHARS,
    SHA1,
    SHA256,
    attacks,
    clean,
    edr_alert,
    hashes,
    member,
    obj,
    objs,
    optional_time,
    pick,
)
from needle.sources.sentinelone.normalize import normalize as sentinelone

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NORMALIZERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "mde": mde,
    "graph": graph,
    "crowdstrike": crowdstrike,
    "sentinelone": functools.partial(sentinelone, console_url="https://usea1-northwind.sentinelone.net"),
}
HUGE = "A" * (MAX_FIELD_CHARS * 3)
# A cut string is MAX_FIELD_CHARS characters and a note of what was cut.
BOUND = MAX_FIELD_CHARS + len(f"…[{len(HUGE)} more characters]")


def cut(text: str) -> str:
    return text[:MAX_FIELD_CHARS] + f"…[{len(text) - MAX_FIELD_CHARS} more characters]"


# --- clean, obj, objs, pick, member -----------------------------------------------------------


def test_clean_cuts_a_long_string_and_says_how_much_was_cut() -> None:
    assert clean(HUGE) == cut(HUGE)
    assert clean("A" * MAX_FIELD_CHARS) == "A" * MAX_FIELD_CHARS


@pytest.mark.parametrize("value", [None, {}, [], {"a": None}, [None, {}], {"a": [None, {"b": []}]}])
def test_clean_is_none_for_nothing(value: Any) -> None:
    assert clean(value) is None


def test_clean_keeps_scalars_and_empty_strings_and_prunes_containers() -> None:
    value = {"n": 0, "f": False, "s": "", "x": None, "l": [1, None, {}, HUGE], HUGE: {"deep": HUGE}}
    assert clean(value) == {"n": 0, "f": False, "s": "", "l": [1, cut(HUGE)], cut(HUGE): {"deep": cut(HUGE)}}


def test_clean_copies_containers() -> None:
    value = {"a": [{"b": "c"}]}
    cleaned = clean(value)
    assert cleaned == value
    assert cleaned is not value
    assert cleaned["a"] is not value["a"]


def test_obj_objs_and_member_leave_out_none() -> None:
    assert obj({"a": 1, "b": None, "c": ""}) == {"a": 1, "c": ""}
    assert obj({"a": None}) is None
    assert objs([None, {"a": 1}, None]) == [{"a": 1}]
    assert objs([None]) is None
    assert member("a", None) is None
    assert member("a", 0) == {"a": 0}


def test_pick_renames_and_cleans_vendor_fields() -> None:
    source = {"accountName": HUGE, "domainName": None, "userSid": {"x": None}, "upn": "a@b"}
    fields = (("name", "accountName"), ("domain", "domainName"), ("uid", "userSid"), ("email_addr", "upn"))
    assert pick(source, fields) == {"name": cut(HUGE), "email_addr": "a@b"}
    assert pick({}, fields) is None


def test_hashes_keep_the_algorithm_even_when_the_value_prunes_away() -> None:
    source = {"sha1": {"x": None}, "sha256": HUGE, "md5": "not asked for"}
    assert hashes(source, (("sha1", SHA1), ("sha256", SHA256))) == [
        {"algorithm_id": 2, "algorithm": "SHA-1"},
        {"algorithm_id": 3, "algorithm": "SHA-256", "value": cut(HUGE)},
    ]


def test_optional_time_is_none_for_what_does_not_parse() -> None:
    assert optional_time("2025-05-12T14:01:07Z") == datetime(2025, 5, 12, 14, 1, 7, tzinfo=UTC)
    assert optional_time("") is None
    assert optional_time("yesterday") is None
    assert optional_time(12) is None


def test_attacks_carry_the_first_known_tactic_and_cut_long_technique_ids() -> None:
    assert attacks(["Malware", "CredentialAccess", "Execution"], ["T1003", HUGE]) == [
        {"technique": {"uid": "T1003"}, "tactic": {"uid": "TA0006", "name": "Credential Access"}},
        {"technique": {"uid": cut(HUGE)}, "tactic": {"uid": "TA0006", "name": "Credential Access"}},
    ]
    assert attacks(["Execution"], []) == [{"tactic": {"uid": "TA0002", "name": "Execution"}}]
    assert attacks(["Malware"], []) is None


def test_edr_alert_bounds_the_values_it_reads_and_keeps_the_event_fields_whole() -> None:
    moment = datetime(2025, 5, 12, 14, 1, 7, tzinfo=UTC)
    event = edr_alert(
        source="mde",
        uid="a1",
        title=HUGE,
        description=[None, HUGE],
        severity_id=4,
        status="new",
        created=moment,
        first_seen=None,
        last_seen=None,
        modified=moment,
        analytic=None,
        tactics=[HUGE],
        techniques=[],
        hints=DeviceHints("mde", "d1", None),
        device=None,
        evidences=None,
        vendor="Microsoft",
        product=HUGE,
        console_url="https://" + HUGE,
        verdict={"x": None},
        unmapped=None,
        user=HUGE,
        process=None,
        raw={},
    )
    assert (event.title, event.user, event.tactics) == (HUGE, HUGE, (HUGE,))
    info = event.finding["finding_info"]
    assert info["title"] == cut(HUGE)
    assert info["desc"] == [cut(HUGE)]
    assert info["types"] == [cut(HUGE)]
    assert event.finding["metadata"]["product"]["name"] == cut(HUGE)
    assert {"verdict", "device"}.isdisjoint(event.finding)
    assert {"first_seen_time", "attacks"}.isdisjoint(info)


# --- the bound, for every normalizer ----------------------------------------------------------


def fixtures(vendor: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted((FIXTURES / vendor).glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        records.extend(payload["data"] if isinstance(payload.get("data"), list) else [payload])
    return records


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every member of every object and list in `value`, containers included."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield (*prefix, key)
        yield from paths(item, (*prefix, key))


@contextlib.contextmanager
def replaced(record: dict[str, Any], path: tuple[Any, ...], value: Any) -> Iterator[dict[str, Any]]:
    """`record` with the member at `path` replaced by `value` (normalizers only read records)."""
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    original = parent[path[-1]]
    parent[path[-1]] = value
    try:
        yield record
    finally:
        parent[path[-1]] = original


def assert_bounded_and_pruned(value: Any, where: str) -> None:
    assert value is not None, f"None in the finding at {where}"
    if isinstance(value, str):
        assert len(value) <= BOUND, f"a {len(value)}-character string in the finding at {where}"
    elif isinstance(value, dict | list):
        assert value, f"an empty object or list in the finding at {where}"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            assert_bounded_and_pruned(key, f"{where} (a key)")
            assert_bounded_and_pruned(item, f"{where}.{key}")


# Oversized values (a string, and containers holding one as a value and as a key), and empty ones.
REPLACEMENTS = [HUGE, [HUGE], {"nested": HUGE, HUGE: "key"}, None, "", [], {}, [None], {"a": None}]


@pytest.mark.parametrize("vendor", list(NORMALIZERS))
def test_every_string_in_a_finding_is_bounded_whatever_field_is_oversized(vendor: str) -> None:
    # GIVEN each fixture with, in turn, each of its members (values, objects, lists) oversized
    # or empty
    normalize = NORMALIZERS[vendor]
    checked = 0
    for record in fixtures(vendor):
        for path in paths(record):
            for value in REPLACEMENTS:
                # WHEN it is normalized
                with replaced(record, path, value) as changed:
                    try:
                        event = normalize(changed)
                    except (MalformedRecordError, TypeError, ValueError):
                        continue  # rejected records are quarantined, never stored as findings
                # THEN no string in the finding is longer than the bound, and nothing in it is
                # None or an empty object or list
                assert_bounded_and_pruned(event.finding, f"{vendor} {path}")
                checked += 1
    assert checked > 100, "the fixtures should give many normalizable variants"
