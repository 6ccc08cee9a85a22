"""End to end: alerts served by the simulated MDE API reach the SNS inbox with a report in S3."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from needle_local.scenarios import skeleton_scenario
from tests.conftest import SIM_SECRET, SimClock
from tests.support import s3_json, scan

pytestmark = pytest.mark.e2e

FUNCTIONS = (
    "PollSourceFunction",
    "ProcessEventsFunction",
    "GatherEvidenceFunction",
    "ConcludeFunction",
    "WriteReportFunction",
    "NotifyFunction",
)


@pytest.fixture
def played(aws: Any, mde: Any, sim_clock: SimClock) -> dict[str, Any]:
    """The skeleton scenario played in 10-minute steps, as `make demo` plays it."""
    start = sim_clock.now
    scenario = skeleton_scenario(start)
    for item in scenario:
        mde.add_alert(item.alert, visible_at=item.visible_at)
    for _ in range(6):
        sim_clock.advance(timedelta(minutes=10))
        aws.tick()
        aws.settle()
    return {"scenario": scenario, "messages": aws.inbox()}


def test_every_alert_is_stored_once_and_investigated(aws: Any, played: dict[str, Any]) -> None:
    scenario = played["scenario"]
    stored = scan(aws, "EventsTable")
    assert sorted(i["vendor_id"]["S"] for i in stored) == sorted(s.alert["id"] for s in scenario)
    assert all("score" in i for i in stored)
    statuses = [e["status"] for e in aws.executions()]
    assert statuses == ["SUCCEEDED"] * len(scenario)
    assert len(played["messages"]) == len(scenario)


def test_attack_alert_reaches_the_inbox_escalated_with_a_report_naming_entity_link_and_score(
    aws: Any, played: dict[str, Any]
) -> None:
    lsass = next(s.alert for s in played["scenario"] if "LSASS" in s.alert["title"])
    [message] = [m for m in played["messages"] if "LSASS" in m.subject]
    assert message.attributes["verdict"] == "escalate"
    assert message.attributes["entity"] == "host:fin-ws-042"
    assert message.attributes["severity"] == "High"
    # the report the message points to, read from S3
    investigation = next(
        json.loads(i["body"]["S"])
        for i in scan(aws, "IncidentsTable")
        if i["pk"]["S"].startswith("investigation#") and lsass["id"] in i["body"]["S"]
    )
    report = s3_json(aws, investigation["report"]["keys"]["json"])
    assert report["entity_id"] == "host:fin-ws-042"
    assert report["console_url"] == f"https://security.microsoft.com/alerts/{lsass['id']}"
    assert isinstance(report["score"], int)
    assert report["score"] >= 70
    assert report["conclusion"]["attack_chain"][:3] == [
        "TA0002 Execution",
        "TA0006 Credential Access",
        "TA0008 Lateral Movement",
    ]
    html = (
        aws.client("s3")
        .get_object(Bucket=aws.physical["ReportsBucket"], Key=investigation["report"]["keys"]["html"])["Body"]
        .read()
        .decode()
    )
    assert "host:fin-ws-042" in html
    assert lsass["id"] in html
    assert str(report["score"]) in html


def test_recurring_noise_stops_alerting_on_its_entity(aws: Any, played: dict[str, Any]) -> None:
    noise = sorted(
        (i for i in scan(aws, "EventsTable") if i["entity_id"]["S"] == "host:eng-ws-007"),
        key=lambda i: i["sk"]["S"],
    )
    scores = [int(i["score"]["N"]) for i in noise]
    assert len(scores) >= 4
    assert scores[0] > scores[-1]
    assert scores[-1] < 25
    assert "suppressed" in noise[-1]["explanation"]["S"]
    verdicts = [
        m.attributes["verdict"] for m in played["messages"] if m.attributes["entity"] == "host:eng-ws-007"
    ]
    assert verdicts[-1] == "benign"


def test_multi_tactic_rule_opens_one_incident_for_the_attacked_host(aws: Any, played: dict[str, Any]) -> None:
    incidents = [
        json.loads(i["body"]["S"])
        for i in scan(aws, "IncidentsTable")
        if i["pk"]["S"].startswith("incident#")
    ]
    assert [(i["rule"], i["entity_id"]) for i in incidents] == [("multi_tactic_24h", "host:fin-ws-042")]


def test_logs_hold_no_secret_payload_or_command_line(
    aws: Any, played: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    captured = capfd.readouterr()
    logs = "\n".join(line for name in FUNCTIONS for line in aws.function_logs(name))
    everything = logs + captured.out + captured.err
    assert "poll finished" in logs
    assert "event processed" in logs
    command_lines = {
        row["processCommandLine"]
        for s in played["scenario"]
        for row in s.alert["evidence"]
        if row.get("processCommandLine")
    }
    assert command_lines
    for secret in (SIM_SECRET, "Bearer ", *command_lines):
        assert secret not in everything
    # a raw payload would carry vendor-only fields such as the detector GUID or tenant id
    for s in played["scenario"]:
        assert s.alert["detectorId"] not in everything
