"""`needle replay`: vendor files through simulators, pollers and the pipeline, to JSON Lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from needle_local.cli import main
from needle_local.scenarios import enterprise_scenario, write_jsonl

pytestmark = pytest.mark.integration


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_replay_stores_every_wellformed_alert_once_and_reports_incidents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the enterprise scenario on three EDRs (one attack seen by two of them), plus a record
    # without an id that the poller must quarantine
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    files = write_jsonl(enterprise_scenario(start), tmp_path / "in")
    truth = _lines(files["ground_truth"])
    with files["crowdstrike"].open("a") as handle:
        handle.write(json.dumps({"updated_timestamp": "2026-11-02T08:30:00Z", "name": "no id"}) + "\n")
    out = tmp_path / "out.jsonl"
    # WHEN replayed through the CLI
    status = main(["replay", str(tmp_path / "in"), "--out", str(out), "--step-minutes", "15"])
    # THEN every well-formed alert is one event line, on its vendor id
    assert status == 0
    lines = _lines(out)
    events = [x for x in lines if x["type"] == "event"]
    stored = {(e["source"], e["vendor_id"]) for e in events}
    assert len(stored) == len(events)  # nothing twice
    assert stored == {(t["source"], t["vendor_id"]) for t in truth}  # nothing lost
    assert all(isinstance(e["score"], int) and e["entity_id"] for e in events)
    # AND the attack campaigns open incidents naming their alerts
    incidents = [x for x in lines if x["type"] == "incident"]
    attacked = {t["vendor_id"] for t in truth if t["is_attack"]}
    assert incidents
    assert any(set(i["vendor_ids"]) & attacked for i in incidents)
    for incident in incidents:
        assert incident["verdict"] in {"escalate", "benign", "inconclusive"}
        assert str(incident["report_uri"]).startswith("s3://")
    # AND progress was shown, with the malformed record counted as quarantined once (the next
    # poll reads it again through its overlap)
    err = capsys.readouterr().err
    steps = [line for line in err.splitlines() if line.startswith("replay: step")]
    assert len(steps) > 2
    assert "quarantined 1," in steps[-1]


def test_replay_names_what_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mde_alerts.jsonl").write_text('{"id": "a"}\nnot json\n')
    status = main(["replay", str(tmp_path), "--out", str(tmp_path / "out.jsonl")])
    assert status == 2
    assert "mde_alerts.jsonl:2: not JSON" in capsys.readouterr().err


def test_bench_replay_draws_its_progress_curve_one_point_per_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.replay import main as bench_main

    chart = tmp_path / "curve.svg"
    assert bench_main(["--alerts", "200", "--days", "0.25", "--chart", str(chart)]) == 0
    printed = capsys.readouterr()
    steps = [line for line in printed.err.splitlines() if line.startswith("replay: step")]
    assert "Replay of 200 alerts over 0.25 days" in printed.out
    assert f"progress curve: {chart}" in printed.out
    svg = chart.read_text()
    curve = svg.split('<polyline points="', 1)[1].split('"', 1)[0].split()
    assert len(curve) == len(steps) + 1  # the origin, then one point per step
