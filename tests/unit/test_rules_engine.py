"""needle.rules.engine: built-in rules pass their own tests; parsing, windows and incident ids."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from needle.model.event import DeviceHints, Event
from needle.rules.engine import Rule, RuleError, evaluate, incident_id, load_rules, parse_rule

pytestmark = pytest.mark.unit

BASE = datetime(2025, 5, 12, 9, 0, tzinfo=UTC)
ENTITY = "ent-eng-lt-117"
BUILTIN = load_rules()


def make_event(
    n: int, *, minutes: float = 0, entity_id: str = ENTITY, score: int | None = 80, **fields: Any
) -> Event:
    """An EDR alert; scored 80 (unusual for its entity) unless a test says otherwise."""
    event = Event(
        source="mde",
        vendor_id=f"rule-test-{n}",
        kind="edr_alert",
        time=BASE + timedelta(minutes=minutes),
        updated_at=BASE + timedelta(minutes=minutes),
        title=f"alert {n}",
        severity_id=3,
        status="new",
        tactics=(),
        techniques=(),
        device=DeviceHints(source="mde", device_id=None, hostname="eng-lt-117"),
        user=None,
        process=None,
        console_url=None,
        finding={},
        entity_id=entity_id,
        score=score,
    )
    changes: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return replace(event, **changes)


def events_from(cases: list[dict[str, Any]]) -> list[Event]:
    """A rule's `tests:` cases as Events: `minutes` is an offset from BASE, the rest are Event fields."""
    return [make_event(i, **case) for i, case in enumerate(cases)]


def rule_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "burst_of_edr_alerts",
        "title": "Three EDR alerts on one entity within 30 minutes",
        "severity": "medium",
        "type": "event_count",
        "match": {"kind": "edr_alert"},
        "timespan": "30m",
        "condition": {"gte": 3},
        "attack": ["TA0002"],
        "runbook": "Check the entity timeline.",
    }
    doc.update(overrides)
    return doc


# --- the built-in pack ----------------------------------------------------------------------


def test_the_builtin_pack_loads_with_unique_meaningful_ids() -> None:
    ids = [r.id for r in BUILTIN]

    assert ids, "at least one built-in rule"
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]+", i) for i in ids)
    for rule in BUILTIN:
        assert rule.tests.get("positive"), f"{rule.id} needs positive tests"
        assert rule.tests.get("negative"), f"{rule.id} needs negative tests"
        assert all(re.fullmatch(r"TA\d{4}|T\d{4}(\.\d{3})?", a) for a in rule.attack)
        assert rule.runbook


@pytest.mark.parametrize("rule", BUILTIN, ids=lambda r: r.id)
def test_builtin_rule_fires_on_its_positive_cases(rule: Rule) -> None:
    # GIVEN the rule's positive timeline
    *history, last = events_from(rule.tests["positive"])
    # WHEN the last event arrives
    match = evaluate(rule, last, history)
    # THEN the rule fires for the entity, with the new event in the match
    assert match is not None
    assert match.entity_id == ENTITY
    assert last in match.events
    assert match.incident_id == incident_id(rule, ENTITY, last.time)


@pytest.mark.parametrize("rule", BUILTIN, ids=lambda r: r.id)
def test_builtin_rule_stays_quiet_on_its_negative_cases(rule: Rule) -> None:
    *history, last = events_from(rule.tests["negative"])

    assert evaluate(rule, last, history) is None


def test_multi_tactic_rule_collects_the_distinct_tactics() -> None:
    [rule] = [r for r in BUILTIN if r.id == "multi_tactic_24h"]
    *history, last = events_from(rule.tests["positive"])

    match = evaluate(rule, last, history)

    assert match is not None
    # ATT&CK ids, not vendor labels: Execution, Credential Access, Lateral Movement
    assert match.values == ("TA0002", "TA0006", "TA0008")
    assert [e.vendor_id for e in match.events] == ["rule-test-0", "rule-test-1", "rule-test-2"]


def test_multi_tactic_rule_ignores_tactics_outside_the_window() -> None:
    [rule] = [r for r in BUILTIN if r.id == "multi_tactic_24h"]
    history = [
        make_event(1, minutes=0, tactics=["Execution"]),
        make_event(2, minutes=30, tactics=["CredentialAccess"]),
    ]
    late = make_event(3, minutes=24 * 60 + 1, tactics=["LateralMovement"])

    assert evaluate(rule, late, history) is None


def test_multi_tactic_rule_counts_one_tactic_once_however_it_is_spelled() -> None:
    [rule] = [r for r in BUILTIN if r.id == "multi_tactic_24h"]
    # GIVEN one tactic spelled three ways (MDE, Graph/SentinelOne, an id)
    history = [
        make_event(1, minutes=0, tactics=["CredentialAccess"]),
        make_event(2, minutes=5, tactics=["Credential Access"]),
    ]
    # THEN it counts once, and the three-tactic rule stays quiet
    assert evaluate(rule, make_event(3, minutes=9, tactics=["TA0006"]), history) is None

    # AND two more tactics, however spelled, make three distinct ids
    history.append(make_event(3, minutes=9, tactics=["TA0006", "execution"]))
    match = evaluate(rule, make_event(4, minutes=12, tactics=["Lateral-Movement"]), history)
    assert match is not None
    assert match.values == ("TA0002", "TA0006", "TA0008")


def test_multi_tactic_rule_ignores_labels_that_are_not_attack_tactics() -> None:
    [rule] = [r for r in BUILTIN if r.id == "multi_tactic_24h"]
    # GIVEN two ATT&CK tactics beside vendor categories in the same field
    history = [
        make_event(1, minutes=0, tactics=["Execution", "Malware"]),
        make_event(2, minutes=5, tactics=["SuspiciousActivity"]),
    ]
    # THEN the categories do not count toward the three tactics
    assert (
        evaluate(rule, make_event(3, minutes=9, tactics=["CredentialAccess", "Ransomware"]), history) is None
    )

    # AND a new event carrying only non-ATT&CK labels never fires, even after three tactics
    history.append(make_event(3, minutes=9, tactics=["CredentialAccess"]))
    history.append(make_event(4, minutes=10, tactics=["LateralMovement"]))
    assert evaluate(rule, make_event(5, minutes=11, tactics=["Malware"]), history) is None
    match = evaluate(rule, make_event(5, minutes=11, tactics=["TA0008"]), history)
    assert match is not None
    assert match.values == ("TA0002", "TA0006", "TA0008")


# --- parse_rule ------------------------------------------------------------------------------


def test_parse_rule_reads_a_complete_document() -> None:
    rule = parse_rule(rule_doc(timespan="2h", tests={"positive": [{"minutes": 0}]}))

    assert rule.id == "burst_of_edr_alerts"
    assert rule.type == "event_count"
    assert rule.timespan == timedelta(hours=2)
    assert rule.gte == 3
    assert rule.match == {"kind": "edr_alert"}
    assert rule.field is None
    assert rule.attack == ("TA0002",)
    assert rule.tests == {"positive": [{"minutes": 0}]}


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
    ],
)
def test_parse_rule_timespan_units(span: str, expected: timedelta) -> None:
    assert parse_rule(rule_doc(timespan=span)).timespan == expected


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (rule_doc(type="sequence"), "type 'sequence'"),
        (rule_doc(type="value_count"), "value_count needs `field`"),
        (rule_doc(timespan="24 hours"), "timespan"),
        (rule_doc(timespan="1w"), "timespan"),
        (rule_doc(timespan="-5m"), "timespan"),
        (rule_doc(timespan=30), "timespan"),
        ({k: v for k, v in rule_doc().items() if k != "id"}, "missing 'id'"),
        ({k: v for k, v in rule_doc().items() if k != "title"}, "missing 'title'"),
        ({k: v for k, v in rule_doc().items() if k != "timespan"}, "missing 'timespan'"),
        ({k: v for k, v in rule_doc().items() if k != "type"}, "missing 'type'"),
        ({k: v for k, v in rule_doc().items() if k != "condition"}, "missing 'condition'"),
        (rule_doc(condition={"lte": 3}), "condition must be like {gte: 3} with a whole number >= 1"),
    ],
)
def test_parse_rule_rejects_unusable_documents(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match=re.escape(message)) as caught:
        parse_rule(doc, origin="bad_rule.yaml")

    assert str(caught.value).startswith("bad_rule.yaml: ")


@pytest.mark.parametrize(("span", "unit"), [("0m", "m"), ("0s", "s"), ("00h", "h"), ("0d", "d")])
def test_parse_rule_rejects_a_zero_timespan(span: str, unit: str) -> None:
    # a zero timespan would make incident_id divide by zero for every match
    with pytest.raises(RuleError, match=re.escape(f"timespan must be at least 1{unit}")) as caught:
        parse_rule(rule_doc(timespan=span), origin="bad_rule.yaml")

    assert str(caught.value).startswith("bad_rule.yaml: ")


@pytest.mark.parametrize(
    "condition",
    [
        3,
        "gte: 3",
        None,
        [3],
        {"gte": "three"},
        {"gte": "3"},
        {"gte": 2.5},
        {"gte": 0},
        {"gte": -1},
        {"gte": True},  # YAML `gte: yes`: bool is an int subclass in Python
    ],
)
def test_parse_rule_rejects_a_malformed_condition(condition: Any) -> None:
    with pytest.raises(
        RuleError, match=re.escape("condition must be like {gte: 3} with a whole number >= 1")
    ):
        parse_rule(rule_doc(condition=condition), origin="bad_rule.yaml")


def test_load_rules_reads_a_directory(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(
        "id: second\ntitle: B\ntype: event_count\ntimespan: 1h\ncondition: {gte: 2}\n"
    )
    (tmp_path / "a.yaml").write_text(
        "id: first\ntitle: A\ntype: event_count\ntimespan: 5m\ncondition: {gte: 1}\n"
    )
    (tmp_path / "notes.txt").write_text("not a rule")

    assert [r.id for r in load_rules(tmp_path)] == ["first", "second"]


def test_load_rules_names_the_file_of_a_bad_rule(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(
        "id: x\ntitle: X\ntype: event_count\ntimespan: soon\ncondition: {gte: 1}\n"
    )

    with pytest.raises(RuleError, match=r"^broken\.yaml: "):
        load_rules(tmp_path)


# --- incident ids -----------------------------------------------------------------------------


def test_incident_id_is_deterministic_per_rule_entity_and_bucket() -> None:
    # GIVEN a rule with a 30 minute window (buckets start on the half hour)
    rule = parse_rule(rule_doc())
    at = datetime(2025, 5, 12, 9, 0, 5, tzinfo=UTC)
    same_bucket = datetime(2025, 5, 12, 9, 29, 59, tzinfo=UTC)
    next_bucket = datetime(2025, 5, 12, 9, 30, 0, tzinfo=UTC)
    # THEN the id repeats within the bucket and differs across buckets, entities and rules
    first = incident_id(rule, ENTITY, at)
    assert re.fullmatch(r"inc-[0-9a-f]{16}", first)
    assert incident_id(rule, ENTITY, at) == first
    assert incident_id(rule, ENTITY, same_bucket) == first
    assert incident_id(rule, ENTITY, next_bucket) != first
    assert incident_id(rule, "ent-other", at) != first
    assert incident_id(replace(rule, id="other_rule"), ENTITY, at) != first


# --- event_count -----------------------------------------------------------------------------


def test_event_count_fires_on_enough_matching_events_in_the_window() -> None:
    # GIVEN three EDR alerts within 30 minutes
    rule = parse_rule(rule_doc())
    history = [make_event(1, minutes=0), make_event(2, minutes=12)]
    new = make_event(3, minutes=25)
    # WHEN the third arrives
    match = evaluate(rule, new, history)
    # THEN the rule fires with the three events in time order
    assert match is not None
    assert [e.vendor_id for e in match.events] == ["rule-test-1", "rule-test-2", "rule-test-3"]
    assert match.values == ()
    assert match.incident_id == incident_id(rule, ENTITY, new.time)


def test_event_count_boundary_is_inclusive() -> None:
    rule = parse_rule(rule_doc())
    history = [make_event(1, minutes=0), make_event(2, minutes=10)]

    assert evaluate(rule, make_event(3, minutes=30), history) is not None
    assert evaluate(rule, make_event(3, minutes=30.01), history) is None


def test_event_count_ignores_non_matching_and_future_events() -> None:
    rule = parse_rule(rule_doc())
    history = [
        make_event(1, minutes=0, kind="network_detection"),
        make_event(2, minutes=5),
        make_event(4, minutes=40),  # after the new event
    ]

    assert evaluate(rule, make_event(3, minutes=10), history) is None


def test_event_count_does_not_count_the_new_event_twice() -> None:
    # GIVEN the timeline already holds the stored copy of the new event
    rule = parse_rule(rule_doc(condition={"gte": 2}))
    new = make_event(1, minutes=3)

    assert evaluate(rule, new, [new]) is None
    assert evaluate(rule, new, [new, make_event(2, minutes=1)]) is not None


def test_a_new_event_the_rule_does_not_match_never_fires() -> None:
    rule = parse_rule(rule_doc(condition={"gte": 1}))

    assert evaluate(rule, make_event(1, kind="needle_finding"), []) is None
    assert evaluate(rule, make_event(1, kind="edr_alert"), []) is not None


def test_match_accepts_a_list_of_values() -> None:
    rule = parse_rule(rule_doc(match={"kind": ["edr_alert", "network_detection"]}, condition={"gte": 2}))
    history = [make_event(1, minutes=0, kind="network_detection")]

    assert evaluate(rule, make_event(2, minutes=1), history) is not None


# --- value_count ------------------------------------------------------------------------------


def test_value_count_needs_the_new_event_to_carry_the_field() -> None:
    rule = parse_rule(rule_doc(type="value_count", field="user", condition={"gte": 2}))
    history = [make_event(1, minutes=0, user="CORP\\jdoe"), make_event(2, minutes=1, user="CORP\\adm-jdoe")]

    assert evaluate(rule, make_event(3, minutes=2, user=None), history) is None
    match = evaluate(rule, make_event(3, minutes=2, user="CORP\\jdoe"), history)
    assert match is not None
    assert match.values == ("CORP\\adm-jdoe", "CORP\\jdoe")


def test_multi_tactic_rule_does_not_count_the_entitys_recurring_noise() -> None:
    # GIVEN two tactics from unusual alerts and a third only from low-scored (habitual) alerts
    [rule] = [r for r in BUILTIN if r.id == "multi_tactic_24h"]
    history = [
        make_event(1, minutes=0, tactics=["Execution"]),
        make_event(2, minutes=5, tactics=["CredentialAccess"]),
        make_event(3, minutes=6, tactics=["LateralMovement"], score=10),
    ]
    # WHEN more habitual alerts arrive THEN nothing fires; an unusual third tactic fires
    assert evaluate(rule, make_event(4, minutes=8, tactics=["LateralMovement"], score=24), history) is None
    assert evaluate(rule, make_event(5, minutes=8, tactics=["LateralMovement"], score=None), history) is None
    match = evaluate(rule, make_event(6, minutes=9, tactics=["LateralMovement"], score=25), history)
    assert match is not None
    assert [e.vendor_id for e in match.events] == ["rule-test-1", "rule-test-2", "rule-test-6"]


@pytest.mark.parametrize("bad", [-1, 101, 2.5, "high", True])
def test_a_min_score_outside_0_to_100_is_refused(bad: Any) -> None:
    with pytest.raises(RuleError, match="min_score"):
        parse_rule(rule_doc(min_score=bad))
