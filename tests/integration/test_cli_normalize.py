"""`needle normalize` end to end: vendor fixtures in, OCSF JSON lines out, rejects on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from needle_local.cli import DEFAULT_S1_CONSOLE, MAX_LINE_BYTES, main

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VENDOR_ID_FIELD = {"mde": "id", "graph": "id", "crowdstrike": "composite_id", "sentinelone": "id"}
NEEDLE_FIELDS = {"source", "vendor_id", "kind", "time", "updated_at", "console_url", "device", "user"}


def vendor_records(vendor: str) -> list[dict[str, Any]]:
    """Every API object of the vendor's fixtures (a whole `{"data": [...]}` response counts each)."""
    records: list[dict[str, Any]] = []
    for path in sorted((FIXTURES / vendor).glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(payload.get("data"), list):
            records.extend(payload["data"])
        else:
            records.append(payload)
    assert records, f"no fixtures for {vendor}"
    return records


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def parsed_lines(text: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(row, dict) for row in rows)
    return rows


@pytest.mark.parametrize("vendor", sorted(VENDOR_ID_FIELD))
def test_every_fixture_of_a_vendor_normalizes_to_one_detection_finding_line(
    vendor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the vendor's fixtures as JSON Lines, with a blank line in between
    records = vendor_records(vendor)
    lines = [json.dumps(record) for record in records]
    source = write_jsonl(tmp_path / f"{vendor}.jsonl", [lines[0], "", *lines[1:]])

    # WHEN they are normalized
    status = main(["normalize", "--source", vendor, str(source)])

    # THEN every object gives one OCSF Detection Finding line carrying Needle's fields, and no raw payload
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    rows = parsed_lines(out)
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        assert row["class_uid"] == 2004
        assert set(row["needle"]) == NEEDLE_FIELDS
        assert row["needle"]["source"] == vendor
        assert row["needle"]["vendor_id"] == record[VENDOR_ID_FIELD[vendor]]
        assert row["needle"]["kind"] == "edr_alert"
        assert set(row["needle"]["device"]) == {"device_id", "hostname", "ips"}
        for field in ("time", "updated_at"):
            assert datetime.fromisoformat(row["needle"][field]).tzinfo is not None
        assert "raw" not in row
        assert "raw" not in row["needle"]


def test_rejected_lines_are_reported_on_stderr_and_the_rest_still_normalizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN good MDE alerts around invalid JSON, a JSON array and an alert without an id
    good = [json.dumps(record) for record in vendor_records("mde")]
    no_id = {key: value for key, value in vendor_records("mde")[0].items() if key != "id"}
    source = write_jsonl(
        tmp_path / "mixed.jsonl",
        [good[0], '{"id": "broken', "[1, 2]", "", json.dumps(no_id), good[-1]],
    )

    # WHEN the file is normalized
    status = main(["normalize", "--source", "mde", str(source)])

    # THEN the good alerts are printed, each reject names file, line, source and reason, status 1
    out, err = capsys.readouterr()
    assert status == 1
    assert [row["needle"]["vendor_id"] for row in parsed_lines(out)] == [
        vendor_records("mde")[0]["id"],
        vendor_records("mde")[-1]["id"],
    ]
    assert err.splitlines() == [
        f"{source}:2: mde: invalid JSON: Unterminated string starting at: line 1 column 8 (char 7)",
        f"{source}:3: mde: not a JSON object (a JSON array)",
        f"{source}:5: mde: missing or empty 'id'",
    ]


def test_a_line_over_one_mebibyte_is_rejected_without_stopping_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a line longer than the bound, then a good alert
    huge = json.dumps({"id": "x", "padding": "a" * MAX_LINE_BYTES})
    good = json.dumps(vendor_records("crowdstrike")[0])
    source = write_jsonl(tmp_path / "huge.jsonl", [huge, good])

    # WHEN the file is normalized
    status = main(["normalize", "--source", "crowdstrike", str(source)])

    # THEN the long line is rejected by its number and the next line still comes out
    out, err = capsys.readouterr()
    assert status == 1
    assert err == f"{source}:1: crowdstrike: line longer than {MAX_LINE_BYTES} bytes\n"
    assert len(parsed_lines(out)) == 1


def test_sentinelone_deep_links_use_the_given_console_or_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN one SentinelOne threat
    threat = vendor_records("sentinelone")[0]
    source = write_jsonl(tmp_path / "s1.jsonl", [json.dumps(threat)])

    # WHEN it is normalized with and without --console-url
    given = main(["normalize", "--source", "sentinelone", str(source), "--console-url", "https://c.example"])
    with_console = parsed_lines(capsys.readouterr().out)[0]
    default = main(["normalize", "--source", "sentinelone", str(source)])
    without_console = parsed_lines(capsys.readouterr().out)[0]

    # THEN the deep link starts with that console
    assert (given, default) == (0, 0)
    assert with_console["needle"]["console_url"].startswith("https://c.example/")
    assert without_console["needle"]["console_url"].startswith(f"{DEFAULT_S1_CONSOLE}/")


@pytest.mark.parametrize(
    "argv",
    [
        ["normalize", "--source", "mde", "{missing}"],
        ["normalize", "--source", "mde", "{tmp}"],
        ["normalize", "--source", "nope", "{missing}"],
        ["normalize", "{missing}"],
        ["normalize", "--source", "mde", "{missing}", "--surplus"],
        ["normalize", "--source", "mde", "{missing}", "--console-url", "https://c.example"],
        [],
    ],
    ids=["missing-file", "directory", "unknown-source", "no-source", "surplus", "console-url-not-s1", "none"],
)
def test_usage_errors_exit_2(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a command line that cannot run
    args = [arg.format(missing=tmp_path / "absent.jsonl", tmp=tmp_path) for arg in argv]

    # WHEN it is run
    status = main(args)

    # THEN it exits 2 with a message and prints nothing on stdout
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err.strip()


def test_a_missing_file_is_named_in_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.jsonl"
    assert main(["normalize", "--source", "graph", str(missing)]) == 2
    assert capsys.readouterr().err == f"needle normalize: {missing}: No such file or directory\n"


def test_replay_says_it_is_not_available_while_its_module_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no needle_local.replay module (None in sys.modules makes its import fail)
    monkeypatch.setitem(sys.modules, "needle_local.replay", None)

    # WHEN `needle replay` runs
    status = main(["replay", "--anything"])

    # THEN it says so and exits 2
    assert status == 2
    assert "replay is not available yet" in capsys.readouterr().err


def test_replay_gets_its_arguments_unparsed_and_its_status_is_the_exit_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a replay module
    seen: list[list[str]] = []

    def replay_main(args: list[str]) -> int:
        seen.append(args)
        return 7

    module = types.ModuleType("needle_local.replay")
    module.main = replay_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "needle_local.replay", module)

    # WHEN `needle replay` runs with options of its own (help included)
    status = main(["replay", "--speed", "10", "alerts.jsonl", "-h"])

    # THEN replay.main receives them as given and its status is returned
    assert (status, seen) == (7, [["--speed", "10", "alerts.jsonl", "-h"]])


def test_the_module_runs_as_a_program_with_the_same_output(tmp_path: Path) -> None:
    # GIVEN CrowdStrike fixtures and one broken line, as a file
    records = vendor_records("crowdstrike")
    lines = [json.dumps(record) for record in records]
    source = write_jsonl(tmp_path / "cs.jsonl", [*lines, "{not json"])

    # WHEN `python -m needle_local.cli normalize` runs in its own process
    done = subprocess.run(
        [sys.executable, "-m", "needle_local.cli", "normalize", "--source", "crowdstrike", str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # THEN stdout has one Detection Finding per alert, stderr the reject, and the status is 1
    assert done.returncode == 1, done.stderr
    rows = parsed_lines(done.stdout)
    assert [row["class_uid"] for row in rows] == [2004] * len(records)
    assert [row["needle"]["vendor_id"] for row in rows] == [r["composite_id"] for r in records]
    assert done.stderr.startswith(f"{source}:{len(lines) + 1}: crowdstrike: invalid JSON: ")
    assert len(done.stderr.splitlines()) == 1
