"""Scenario generators against the real normalizers: vendor shapes, ground truth, replay files."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from needle.model.attack import tactic
from needle.model.event import Event, MalformedRecordError, parse_time
from needle.sources.crowdstrike.normalize import normalize as crowdstrike_normalize
from needle.sources.graph.normalize import normalize as graph_normalize
from needle.sources.mde.normalize import normalize as mde_normalize
from needle.sources.sentinelone.normalize import normalize as sentinelone_normalize
from needle.store.entities import normalize_hostname
from needle_local.scenarios import (
    ATTACK_CAMPAIGN,
    FIN_WS,
    FIN_WS_FALCON,
    GROUND_TRUTH_FILE,
    REPLAY_FILES,
    S1_CONSOLE,
    SOURCES,
    VENDOR_DELAY,
    LabelledAlert,
    ScenarioAlert,
    crowdstrike_alert,
    enterprise_scenario,
    generate,
    graph_alert,
    mde_alert,
    sentinelone_threat,
    skeleton_scenario,
    write_jsonl,
)

pytestmark = pytest.mark.integration

START = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
SPAN = timedelta(hours=12)
N = 5000
NORMALIZERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "mde": mde_normalize,
    "graph": graph_normalize,
    "crowdstrike": crowdstrike_normalize,
    "sentinelone": lambda raw: sentinelone_normalize(raw, S1_CONSOLE),
}
# Where each vendor keeps the update time that orders its listings (the polling cursor).
UPDATE_TIME: dict[str, Callable[[dict[str, Any]], Any]] = {
    "mde": lambda raw: raw.get("lastUpdateTime"),
    "graph": lambda raw: raw.get("lastUpdateDateTime"),
    "crowdstrike": lambda raw: raw.get("updated_timestamp"),
    "sentinelone": lambda raw: raw.get("threatInfo", {}).get("updatedAt"),
}
Scenario = dict[str, list[ScenarioAlert]]
Normalized = dict[str, list[tuple[ScenarioAlert, Event]]]


def is_malformed(item: ScenarioAlert) -> bool:
    return isinstance(item, LabelledAlert) and item.malformed


def normalize_all(scenario: Scenario) -> Normalized:
    """Every well-formed record with its event; a malformed one must be rejected."""
    out: Normalized = {}
    for source, items in scenario.items():
        out[source] = []
        for item in items:
            if is_malformed(item):
                with pytest.raises(MalformedRecordError):
                    NORMALIZERS[source](item.alert)
            else:
                out[source].append((item, NORMALIZERS[source](item.alert)))
    return out


@pytest.fixture(scope="module")
def enterprise() -> Scenario:
    return enterprise_scenario(START)


@pytest.fixture(scope="module")
def generated() -> Scenario:
    return generate(N, START, SPAN)


@pytest.fixture(scope="module")
def generated_events(generated: Scenario) -> Normalized:
    return normalize_all(generated)


# -- enterprise_scenario -------------------------------------------------------------------


def test_enterprise_scenario_is_small_timely_and_normalizes(enterprise: Scenario) -> None:
    # GIVEN the enterprise scenario
    # WHEN every alert goes through its vendor's normalizer
    events = normalize_all(enterprise)

    # THEN three EDRs report at most 30 alerts, all within 55 minutes, each visible 30 s after
    # its vendor update time
    assert set(enterprise) == {"mde", "crowdstrike", "sentinelone"}
    assert sum(len(items) for items in enterprise.values()) <= 30
    assert all(events[source] for source in enterprise)
    for pairs in events.values():
        for item, event in pairs:
            assert event.updated_at >= START
            assert item.visible_at <= START + timedelta(minutes=55)
            assert item.visible_at - event.updated_at == VENDOR_DELAY


def test_enterprise_scenario_keeps_the_skeleton_as_its_mde_view(enterprise: Scenario) -> None:
    # GIVEN the skeleton of the same start
    skeleton = skeleton_scenario(START)

    # WHEN the enterprise scenario's MDE view is compared with it
    mde = enterprise["mde"]

    # THEN it is the skeleton, alert for alert, with the attack named
    assert [item.alert for item in mde] == [item.alert for item in skeleton]
    assert [item.is_attack for item in mde] == [item.is_attack for item in skeleton]
    assert {item.campaign for item in mde if isinstance(item, LabelledAlert) and item.is_attack} == {
        ATTACK_CAMPAIGN
    }


def test_falcon_sees_the_lsass_attack_a_minute_later_on_the_same_host(enterprise: Scenario) -> None:
    # GIVEN MDE's LSASS alert and Falcon's credential theft detection
    lsass = next(i.alert for i in enterprise["mde"] if i.alert["category"] == "CredentialAccess")
    theft = next(i.alert for i in enterprise["crowdstrike"] if i.alert["tactic_id"] == "TA0006")

    # WHEN both are normalized and their hosts resolved by hostname
    mde_event, falcon_event = mde_normalize(lsass), crowdstrike_normalize(theft)

    # THEN both EDRs name one host (Falcon by its short upper-case name), a minute apart
    assert mde_event.device.hostname == FIN_WS
    assert falcon_event.device.hostname == FIN_WS_FALCON
    assert normalize_hostname(FIN_WS) == normalize_hostname(FIN_WS_FALCON) == "fin-ws-042"
    assert parse_time(theft["created_timestamp"]) - parse_time(lsass["alertCreationTime"]) == timedelta(
        minutes=1
    )
    assert falcon_event.time > mde_event.time
    assert falcon_event.severity_id == 4
    assert falcon_event.device.ips == ("10.20.30.42",)  # the office NAT address makes no lease
    assert falcon_event.user == "CORP\\jdoe" == mde_event.user


def test_enterprise_noise_recurs_on_two_linux_servers_and_a_mac(enterprise: Scenario) -> None:
    # GIVEN the enterprise scenario's Falcon and SentinelOne views
    falcon = [(item, crowdstrike_normalize(item.alert)) for item in enterprise["crowdstrike"]]
    threats = [(item, sentinelone_normalize(item.alert, S1_CONSOLE)) for item in enterprise["sentinelone"]]

    # WHEN the benign ones are grouped by host and title
    noise = Counter((e.device.hostname, e.title) for item, e in falcon if not item.is_attack)
    linux = {item.alert["device"]["platform_name"] for item, _ in falcon if not item.is_attack}
    pua = Counter(e.title for item, e in threats if not item.is_attack)
    malicious = [e for item, e in threats if item.is_attack]

    # THEN two Linux servers repeat one detection each, and the Mac has a recurring PUA and one
    # unmitigated malicious threat
    assert linux == {"Linux"}
    assert len(noise) == 2
    assert all(count >= 3 for count in noise.values())
    assert {item.alert["agentRealtimeInfo"]["agentOsType"] for item, _ in threats} == {"macos"}
    assert len(pua) == 1
    assert next(iter(pua.values())) >= 3
    assert {e.finding["unmapped"]["classification"] for item, e in threats if not item.is_attack} == {"PUA"}
    assert len(malicious) == 1
    assert malicious[0].severity_id == 5


# -- generate -------------------------------------------------------------------------------


def test_generated_records_normalize_except_the_malformed_ones(
    generated: Scenario, generated_events: Normalized
) -> None:
    # GIVEN 5,000 generated records, normalized by the fixture (which also checks that every
    # malformed record is rejected with MalformedRecordError)
    malformed = [item for items in generated.values() for item in items if is_malformed(item)]

    # WHEN the normalized events are counted
    normalized = sum(len(pairs) for pairs in generated_events.values())

    # THEN everything but the ~0.05 % deliberately malformed records became an event
    assert 1 <= len(malformed) <= 5
    assert normalized + len(malformed) == N


def test_every_vendors_malformed_records_are_rejected() -> None:
    # GIVEN enough records for every vendor to get a malformed one
    scenario = generate(7000, START, SPAN, seed=11)
    malformed = {source: [i for i in items if is_malformed(i)] for source, items in scenario.items()}

    # WHEN each goes through its vendor's normalizer
    # THEN each is rejected
    assert all(malformed[source] for source in SOURCES)
    for source, items in malformed.items():
        for item in items:
            with pytest.raises(MalformedRecordError):
                NORMALIZERS[source](item.alert)


def test_generate_is_deterministic_for_a_seed() -> None:
    # GIVEN two runs with one seed and one with another
    first = generate(600, START, SPAN, seed=3)
    again = generate(600, START, SPAN, seed=3)
    other = generate(600, START, SPAN, seed=4)

    # WHEN their records are compared
    def dump(scenario: Scenario) -> str:
        return json.dumps(
            {
                s: [[i.alert, i.visible_at.isoformat(), i.is_attack] for i in items]
                for s, items in scenario.items()
            },
            sort_keys=True,
        )

    # THEN the same seed gives the same enterprise and another seed a different one
    assert dump(first) == dump(again)
    assert dump(first) != dump(other)


def test_generate_proportions_and_update_span(generated: Scenario, generated_events: Normalized) -> None:
    # GIVEN the generated records
    counts = {source: len(items) for source, items in generated.items()}

    # WHEN their vendor update times are read back through the normalizers
    times = [event.updated_at for pairs in generated_events.values() for _, event in pairs]

    # THEN the sources split 35/15/35/15 %, and every update time lies inside the span
    assert counts == {"mde": 1750, "graph": 750, "crowdstrike": 1750, "sentinelone": 750}
    assert min(times) >= START
    assert max(times) <= START + SPAN
    for pairs in generated_events.values():
        for item, event in pairs:
            assert item.visible_at == event.updated_at + VENDOR_DELAY


def test_noise_recurs_per_host_from_a_few_dozen_kinds(generated_events: Normalized) -> None:
    # GIVEN the benign MDE and Falcon events
    by_host: dict[str, set[str]] = defaultdict(set)
    per_host = Counter[str]()
    kinds: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for source in ("mde", "crowdstrike", "sentinelone"):
        for item, event in generated_events[source]:
            if item.is_attack:
                continue
            host = f"{source}:{normalize_hostname(event.device.hostname or '')}"
            by_host[host].add(event.title)
            per_host[host] += 1
            kinds[source].add((event.title, event.process or ""))

    # WHEN busy hosts are examined
    busy = [host for host, count in per_host.items() if count >= 10]

    # THEN each repeats its own few habitual detections, drawn from a few dozen per vendor
    assert busy
    assert all(len(by_host[host]) <= 6 for host in busy)
    assert len({frozenset(by_host[host]) for host in busy}) > 1
    assert len(kinds["mde"]) >= 20
    assert len(kinds["crowdstrike"]) >= 20
    assert len(per_host) >= 120


def test_attack_campaigns_span_three_tactics_on_one_host_within_an_hour(generated_events: Normalized) -> None:
    # GIVEN the attack events, grouped by campaign
    campaigns: dict[str, list[tuple[str, Event]]] = defaultdict(list)
    for source, pairs in generated_events.items():
        for item, event in pairs:
            if item.is_attack:
                assert isinstance(item, LabelledAlert)
                assert item.campaign is not None
                campaigns[item.campaign].append((source, event))

    # WHEN each campaign's alerts are examined (first version of each: analysts may update
    # an alert hours later)
    # THEN a handful per 10,000 records, each 3-5 alerts per EDR over >= 3 tactics on one host
    # within an hour
    assert 1 <= len(campaigns) <= 5
    for alerts in campaigns.values():
        first: dict[tuple[str, str], Event] = {}
        for source, event in alerts:
            first.setdefault((source, event.vendor_id), event)
        hosts = {normalize_hostname(event.device.hostname or "") for event in first.values()}
        tactics = {found[0] for e in first.values() for t in e.tactics if (found := tactic(t))}
        by_source = Counter(source for source, _ in first)
        times = [event.time for event in first.values()] + [event.updated_at for event in first.values()]
        assert len(hosts) == 1
        assert len(tactics) >= 3
        assert 3 <= max(by_source.values()) <= 5
        assert max(times) - min(times) <= timedelta(hours=1)


def test_updates_are_later_versions_with_a_new_status(generated_events: Normalized) -> None:
    # GIVEN every version of every generated alert
    versions: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for source, pairs in generated_events.items():
        for _, event in pairs:
            versions[(source, event.vendor_id)].append(event)

    # WHEN the alerts seen more than once are examined
    updated = [sorted(events, key=lambda e: e.updated_at) for events in versions.values() if len(events) > 1]

    # THEN ~0.1 % of the records are updates: same id, later update time, changed status
    assert len(updated) == round(N * 0.001)
    for earlier, later in updated:
        assert later.updated_at > earlier.updated_at
        assert later.status != earlier.status
        assert later.time == earlier.time


def test_hostnames_shared_by_microsoft_and_falcon_unify(generated_events: Normalized) -> None:
    # GIVEN the hosts Microsoft (MDE and Graph) and Falcon report
    microsoft: dict[str, set[str]] = defaultdict(set)
    falcon: dict[str, set[str]] = defaultdict(set)
    everyone: set[str] = set()
    for source, pairs in generated_events.items():
        for _, event in pairs:
            raw = event.device.hostname or ""
            short = normalize_hostname(raw)
            everyone.add(short)
            if source in ("mde", "graph"):
                microsoft[short].add(raw)
            elif source == "crowdstrike":
                falcon[short].add(raw)

    # WHEN their names are normalized
    shared = set(microsoft) & set(falcon)

    # THEN a good share of hosts is seen by both, Microsoft by FQDN and Falcon by upper-case
    # short name, and both normalize to one short name
    assert len(shared) >= len(everyone) // 5
    for short in shared:
        assert microsoft[short] == {f"{short}.corp.example.com"}
        assert falcon[short] == {short.upper()}


# -- write_jsonl ----------------------------------------------------------------------------


def test_write_jsonl_files_are_sorted_and_parse(
    tmp_path: Path, generated: Scenario, generated_events: Normalized
) -> None:
    # GIVEN a generated enterprise with updates and malformed records
    scenario = generated

    # WHEN it is written as replay input
    paths = write_jsonl(scenario, tmp_path)

    # THEN each vendor file holds its records, one per line, in vendor update order
    assert {source: paths[source].name for source in SOURCES} == REPLAY_FILES
    for source in SOURCES:
        lines = paths[source].read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(scenario[source])
        stamps = []
        for line in lines:
            try:
                stamps.append(parse_time(UPDATE_TIME[source](json.loads(line))))
            except MalformedRecordError:
                continue
        assert len(stamps) == len(generated_events[source])
        assert stamps == sorted(stamps)
    # AND the ground truth names every distinct well-formed alert once, attacks with a campaign
    truth = [json.loads(line) for line in paths["ground_truth"].read_text(encoding="utf-8").splitlines()]
    assert paths["ground_truth"].name == GROUND_TRUTH_FILE
    keys = [(row["source"], row["vendor_id"]) for row in truth]
    assert len(keys) == len(set(keys))
    well_formed = {
        (source, event.vendor_id) for source, pairs in generated_events.items() for _, event in pairs
    }
    assert set(keys) == well_formed
    assert all(set(row) == {"source", "vendor_id", "is_attack", "campaign"} for row in truth)
    assert all((row["campaign"] is not None) == row["is_attack"] for row in truth)
    assert any(row["is_attack"] for row in truth)


def test_write_jsonl_of_the_enterprise_scenario(tmp_path: Path, enterprise: Scenario) -> None:
    # GIVEN the enterprise scenario, which has no Graph view
    # WHEN it is written
    paths = write_jsonl(enterprise, tmp_path)

    # THEN the Graph file is empty and the ground truth marks the attack on both EDRs
    assert paths["graph"].read_text(encoding="utf-8") == ""
    truth = [json.loads(line) for line in paths["ground_truth"].read_text(encoding="utf-8").splitlines()]
    assert len(truth) == sum(len(items) for items in enterprise.values())
    attack_sources = {row["source"] for row in truth if row["campaign"] == ATTACK_CAMPAIGN}
    assert attack_sources == {"mde", "crowdstrike"}


def test_write_jsonl_rejects_an_unknown_source(tmp_path: Path) -> None:
    # GIVEN a scenario keyed by a source Needle does not know
    # WHEN / THEN writing it fails before anything is written
    with pytest.raises(ValueError, match="unknown sources"):
        write_jsonl({"carbonblack": []}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- builders -------------------------------------------------------------------------------


def builder_arguments(**overrides: Any) -> dict[str, Any]:
    created = START + timedelta(minutes=5)
    arguments: dict[str, Any] = {
        "seed": "test/builder",
        "hostname": "fin-ws-042.corp.example.com",
        "ip": "10.20.30.42",
        "user": "CORP\\jdoe",
        "title": "Suspicious PowerShell command line",
        "tactic": "Execution",
        "technique": "T1059.001",
        "severity": "medium",
        "command_line": "powershell.exe -nop -w hidden -c whoami",
        "created": created,
        "updated": created + timedelta(seconds=40),
    }
    arguments.update(overrides)
    return arguments


@pytest.mark.parametrize(
    ("source", "builder", "overrides"),
    [
        ("mde", mde_alert, {}),
        ("graph", graph_alert, {}),
        ("crowdstrike", crowdstrike_alert, {"hostname": "FIN-WS-042"}),
        (
            "sentinelone",
            sentinelone_threat,
            {"hostname": "MKT-MBP-017", "user": "lchen", "platform": "macos"},
        ),
    ],
)
def test_builders_give_each_vendors_shape(
    source: str, builder: Callable[..., dict[str, Any]], overrides: dict[str, Any]
) -> None:
    # GIVEN one set of facts
    arguments = builder_arguments(**overrides)

    # WHEN a vendor's builder renders them twice, and once with another seed
    alert = builder(**arguments)
    again = builder(**arguments)
    other = builder(**{**arguments, "seed": "test/other"})
    event = NORMALIZERS[source](alert)

    # THEN the object normalizes to those facts, deterministically, with a per-seed id
    assert alert == again
    assert alert is not again
    assert event.vendor_id != NORMALIZERS[source](other).vendor_id
    assert event.updated_at == arguments["updated"]
    assert event.title == arguments["title"]
    assert "T1059.001" in event.techniques
    assert tactic(event.tactics[0]) == ("TA0002", "Execution")
    assert normalize_hostname(event.device.hostname or "") == normalize_hostname(arguments["hostname"])
    assert event.user is not None
    assert "jdoe" in event.user or "lchen" in event.user
    if source != "mde":  # an MDE alert carries no device address
        assert arguments["ip"] in event.device.ips


def containers(value: Any) -> set[int]:
    """The identities of every dict and list inside `value`."""
    if isinstance(value, dict):
        return {id(value)}.union(*(containers(v) for v in value.values()))
    if isinstance(value, list):
        return {id(value)}.union(*(containers(v) for v in value))
    return set()


@pytest.mark.parametrize(
    ("builder", "overrides"),
    [
        (mde_alert, {}),
        (graph_alert, {}),
        (crowdstrike_alert, {"hostname": "FIN-WS-042"}),
        (sentinelone_threat, {"hostname": "MKT-MBP-017", "user": "lchen"}),
    ],
)
def test_built_alerts_share_no_mutable_parts(
    builder: Callable[..., dict[str, Any]], overrides: dict[str, Any]
) -> None:
    # GIVEN two alerts of one detection on one host (built from one cached template)
    first = builder(**builder_arguments(**overrides))
    second = builder(**builder_arguments(**overrides, seed="test/second"))

    # WHEN their nested dicts and lists are compared
    shared = containers(first) & containers(second)

    # THEN none is shared: editing one alert can never change another
    assert first != second
    assert not shared


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"created": datetime(2025, 3, 4, 10, 5)}, "timezone-aware"),
        ({"severity": "severe"}, "severity"),
        ({"tactic": "Lunch Break"}, "ATT&CK tactic"),
        ({"status": "closed"}, "status"),
        ({"updated": START}, "before created"),
    ],
)
def test_builders_reject_bad_arguments(overrides: dict[str, Any], message: str) -> None:
    # GIVEN arguments no vendor would produce
    arguments = builder_arguments(**overrides)

    # WHEN / THEN the builder refuses them
    with pytest.raises(ValueError, match=message):
        mde_alert(**arguments)
