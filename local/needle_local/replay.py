"""`needle replay DIR --out FILE`: vendor API objects through the whole pipeline, for evaluations.

DIR holds any of mde_alerts.jsonl, graph_alerts.jsonl, crowdstrike_alerts.jsonl and
sentinelone_threats.jsonl (one vendor API object per line). Each file is served by its vendor
simulator in vendor-update-time order on a simulated clock advanced in steps; at every step
each source's schedule fires (the real pollers over real HTTP), then the Events stream and the
investigations settle on the embedded AWS. FILE gets one JSON line per stored event and one
per incident.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from needle.model.event import MalformedRecordError
from needle.sources.crowdstrike.client import cursor_of as crowdstrike_cursor
from needle.sources.graph.client import cursor_of as graph_cursor
from needle.sources.mde.client import cursor_of as mde_cursor
from needle.sources.sentinelone.client import cursor_of as sentinelone_cursor
from needle_local.embedded import EmbeddedAws
from needle_local.simulators.base import HttpSimulator
from needle_local.simulators.credentials import SECRET_OF, SIM_SECRETS
from needle_local.simulators.crowdstrike import CrowdStrikeSimulator
from needle_local.simulators.graph import GraphSimulator
from needle_local.simulators.mde import MdeSimulator
from needle_local.simulators.sentinelone import SentinelOneSimulator

FILES = {
    "mde": "mde_alerts.jsonl",
    "graph": "graph_alerts.jsonl",
    "crowdstrike": "crowdstrike_alerts.jsonl",
    "sentinelone": "sentinelone_threats.jsonl",
}
NETWORK_FILES = ("suricata_eve.jsonl", "zeek_notice.jsonl", "network_detections.jsonl")
PARAMETER = {"mde": "Mde", "graph": "Graph", "crowdstrike": "CrowdStrike", "sentinelone": "SentinelOne"}
CURSOR = {
    "mde": mde_cursor,
    "graph": graph_cursor,
    "crowdstrike": crowdstrike_cursor,
    "sentinelone": sentinelone_cursor,
}
MAX_LINE_BYTES = 1 << 20
# Every step costs a poll per source and a settle whatever it carries, so a month of alerts is
# replayed in a few hundred steps, not one per 10 minutes; correlation windows use event times,
# so a longer step changes when an alert is processed, not what it correlates with.
AUTO_STEPS = 240
TRIGGER_CHOICES = ("incidents", "every-edr-alert", "none")
MIN_STEP_MINUTES = 10.0


class ReplayInputError(ValueError):
    """The replay directory cannot be replayed (named file, line and reason)."""


@dataclass(frozen=True)
class Record:
    source: str
    payload: Any
    updated: datetime | None  # None: a record without a usable update time (served raw)


@dataclass(frozen=True)
class Step:
    """Where the replay stands after one step (what its progress line says)."""

    number: int
    steps: int
    sim_time: datetime
    elapsed: float  # wall seconds since the first poll
    stored: int
    total: int
    quarantined: int
    notified: int

    def line(self) -> str:
        rate = self.stored / self.elapsed if self.elapsed else 0.0
        return (
            f"replay: step {self.number}/{self.steps} sim {self.sim_time:%Y-%m-%d %H:%M}Z "
            f"stored {self.stored}/{self.total}, quarantined {self.quarantined}, notified {self.notified} "
            f"({rate:.0f} alerts/s, {self.elapsed:.0f}s)"
        )


class SimClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def read_records(directory: Path, log: TextIO) -> dict[str, list[Record]]:
    """Every vendor object of DIR, per source, sorted by vendor update time."""
    found: dict[str, list[Record]] = {}
    for source, name in FILES.items():
        path = directory / name
        if not path.exists():
            continue
        records = []
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if len(line) > MAX_LINE_BYTES:
                    raise ReplayInputError(f"{path}:{number}: line longer than {MAX_LINE_BYTES} bytes")
                if not line.strip():
                    continue
                try:
                    payload = json.loads(line)
                except ValueError as exc:
                    raise ReplayInputError(f"{path}:{number}: not JSON ({exc.__class__.__name__})") from exc
                records.append(Record(source, payload, _updated(source, payload)))
        records.sort(key=lambda r: r.updated or datetime.min.replace(tzinfo=UTC))
        found[source] = records
        print(f"replay: {name}: {len(records)} records", file=log)
    for name in NETWORK_FILES:
        if (directory / name).exists():
            print(f"replay: {name}: network detections are not supported yet; skipped", file=log)
    if not found:
        raise ReplayInputError(f"{directory}: none of {', '.join(FILES.values())}")
    return found


def _updated(source: str, payload: Any) -> datetime | None:
    try:
        return CURSOR[source](payload)
    except (MalformedRecordError, KeyError, TypeError, ValueError, AttributeError):
        return None


def auto_step(span: timedelta) -> timedelta:
    """The span in AUTO_STEPS steps, at least MIN_STEP_MINUTES, in whole minutes."""
    minutes = max(MIN_STEP_MINUTES, math.ceil(span.total_seconds() / 60 / AUTO_STEPS))
    return timedelta(minutes=minutes)


def _simulator(source: str, clock: SimClock) -> HttpSimulator:
    if source == "mde":
        return MdeSimulator(clock=clock)
    if source == "graph":
        return GraphSimulator(clock=clock)
    if source == "crowdstrike":
        return CrowdStrikeSimulator(clock=clock)
    # The replay paces itself; SentinelOne's per-second limit would only add waiting.
    return SentinelOneSimulator(clock=clock, rate_limit=None)


def _load(simulator: Any, records: list[Record], start: datetime) -> None:
    for record in records:
        if record.updated is None or not isinstance(record.payload, dict):
            simulator.add_raw(record.payload, visible_at=start, sort_time=start)
        else:
            try:
                simulator.add_alert(record.payload, visible_at=record.updated)
            except (ValueError, KeyError, TypeError):
                # The simulator refuses what it cannot index (e.g. no id): the poller must still see it.
                simulator.add_raw(record.payload, visible_at=record.updated, sort_time=record.updated)


def replay(
    directory: Path,
    out: TextIO,
    *,
    step: timedelta | None,
    trigger: str,
    log: TextIO,
    on_step: Callable[[Step], None] | None = None,
) -> dict[str, int]:
    """Replay DIR; `step` None picks one from the span (auto_step); `on_step` sees every step."""
    records = read_records(directory, log)
    times = [r.updated for rs in records.values() for r in rs if r.updated is not None]
    if not times:
        raise ReplayInputError(f"{directory}: no record has a vendor update time")
    first, last = min(times), max(times)
    step = step or auto_step(last - first)
    print(f"replay: {first:%Y-%m-%d %H:%M}Z to {last:%Y-%m-%d %H:%M}Z in steps of {step}", file=log)
    clock = SimClock(first)
    real_now = datetime.now(UTC)
    lookback_minutes = int((real_now - first).total_seconds() // 60) + 60
    total = sum(len(rs) for rs in records.values())
    simulators = {source: _simulator(source, clock) for source in records}
    for simulator in simulators.values():
        simulator.start()
    try:
        for source, simulator in simulators.items():
            _load(simulator, records[source], first)
        parameters = {"InvestigationTrigger": trigger, "LogLevel": "WARNING"}
        parameters["PollLookbackMinutes"] = str(max(lookback_minutes, 1))
        for source, prefix in PARAMETER.items():
            parameters[f"Enable{prefix}"] = "true" if source in simulators else "false"
        secrets: dict[str, dict[str, str]] = {}
        for source, simulator in simulators.items():
            prefix = PARAMETER[source]
            if source in ("mde", "graph"):
                parameters[f"{prefix}ApiBaseUrl"] = simulator.base_url
                parameters["MdeLoginBaseUrl"] = simulator.base_url
            elif source == "crowdstrike":
                parameters["CrowdStrikeApiBaseUrl"] = simulator.base_url
            else:
                parameters["SentinelOneConsoleUrl"] = simulator.base_url
            secrets[SECRET_OF[source]] = SIM_SECRETS[SECRET_OF[source]]
        if "mde" in simulators:
            parameters["MdeLoginBaseUrl"] = simulators["mde"].base_url
        with EmbeddedAws(parameters=parameters, secrets=secrets) as aws:
            if "mde" in simulators and "graph" in simulators:
                # In AWS both APIs share login.microsoftonline.com; here each simulator is its own
                # Entra tenant, so Graph's poller is pointed at the Graph simulator's.
                aws.patch_environment(
                    "PollSourceFunction", {"GRAPH_LOGIN_BASE_URL": simulators["graph"].base_url}
                )
            return _run(aws, clock, first, last, step, total, out, log, on_step)
    finally:
        for simulator in simulators.values():
            simulator.stop()


def _run(
    aws: EmbeddedAws,
    clock: SimClock,
    first: datetime,
    last: datetime,
    step: timedelta,
    total: int,
    out: TextIO,
    log: TextIO,
    on_step: Callable[[Step], None] | None,
) -> dict[str, int]:
    started = time.monotonic()
    steps = max(1, int((last - first) / step) + 1)
    stored = quarantined = notified = 0
    for number in range(1, steps + 2):
        clock.now = min(first + number * step, last + step)
        for report in aws.tick(now=clock.now):
            stored += report["created"]
            quarantined += report["quarantined"]
        aws.settle(timeout=3600)
        # Read as a subscriber would: moto walks the whole queue on every send, so an unread
        # inbox would make each notification slower than the last.
        notified += len(aws.inbox())
        done = Step(
            number, steps + 1, clock.now, time.monotonic() - started, stored, total, quarantined, notified
        )
        print(done.line(), file=log, flush=True)
        if on_step is not None:
            on_step(done)
    print("replay: reading events and incidents back", file=log, flush=True)
    counts = {"events": 0, "incidents": 0, "notifications": notified}
    for line in _event_lines(aws):
        out.write(json.dumps(line) + "\n")
        counts["events"] += 1
    for line in _incident_lines(aws):
        out.write(json.dumps(line) + "\n")
        counts["incidents"] += 1
    counts["seconds"] = int(time.monotonic() - started)
    return counts


def _scan(aws: EmbeddedAws, table: str, projection: str, names: dict[str, str]) -> Iterator[dict[str, Any]]:
    dynamodb = aws.client("dynamodb")
    paginator = dynamodb.get_paginator("scan")
    pages = paginator.paginate(
        TableName=aws.physical[table], ProjectionExpression=projection, ExpressionAttributeNames=names
    )
    for page in pages:
        yield from page["Items"]


def _event_lines(aws: EmbeddedAws) -> Iterator[dict[str, Any]]:
    # One Query per entity, not a Scan: moto sorts the whole table for every Scan page, which
    # makes reading 50,000 events back quadratic. Every stored event's entity has an alias in
    # the Entities table (the poller resolves before it stores).
    entities = {
        item["entity_id"]["S"] for item in _scan(aws, "EntitiesTable", "#e", {"#e": "entity_id"}) if item
    }
    names = {f"#{n}": n for n in ("source", "vendor_id", "entity_id", "time", "score", "suppressed")}
    names |= {"#explanation": "explanation", "#incident_ids": "incident_ids"}
    paginator = aws.client("dynamodb").get_paginator("query")
    rows: list[dict[str, Any]] = []
    for entity_id in sorted(entities):
        pages = paginator.paginate(
            TableName=aws.physical["EventsTable"],
            KeyConditionExpression="#entity_id = :e",
            ExpressionAttributeValues={":e": {"S": entity_id}},
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
        )
        rows.extend(_event_line(item) for page in pages for item in page["Items"])
    yield from sorted(rows, key=lambda r: (r["time"], r["source"], r["vendor_id"]))


def _event_line(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "event",
        "source": item["source"]["S"],
        "vendor_id": item["vendor_id"]["S"],
        "entity_id": item["entity_id"]["S"],
        "time": item["time"]["S"],
        "score": int(item["score"]["N"]) if "score" in item else None,
        "suppressed": bool(item.get("suppressed", {}).get("BOOL", False)),
        "explanation": item.get("explanation", {}).get("S"),
        "incident_ids": [v["S"] for v in item.get("incident_ids", {}).get("L", [])],
    }


def _incident_lines(aws: EmbeddedAws) -> Iterator[dict[str, Any]]:
    items = list(_scan(aws, "IncidentsTable", "#pk, #body", {"#pk": "pk", "#body": "body"}))
    investigations = {
        i["pk"]["S"].removeprefix("investigation#"): json.loads(i["body"]["S"])
        for i in items
        if i["pk"]["S"].startswith("investigation#")
    }
    for item in items:
        if not item["pk"]["S"].startswith("incident#"):
            continue
        body = json.loads(item["body"]["S"])
        investigation = investigations.get(f"inv-{body['id']}", {})
        yield {
            "type": "incident",
            "id": body["id"],
            "rule": body["rule"],
            "entity_id": body["entity_id"],
            "vendor_ids": [uid.split(":", 1)[1] for uid in body["event_uids"]],
            "verdict": investigation.get("verdict"),
            "confidence": investigation.get("confidence"),
            "report_uri": investigation.get("report", {}).get("uris", {}).get("html"),
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="folder with <vendor>_alerts.jsonl files")
    parser.add_argument("--out", type=Path, required=True, help="JSON Lines output (events, incidents)")
    parser.add_argument(
        "--step-minutes",
        type=float,
        default=None,
        help=(
            f"simulated minutes per poll tick (default: the span in {AUTO_STEPS} steps, "
            f"at least {MIN_STEP_MINUTES:g})"
        ),
    )
    parser.add_argument(
        "--investigate",
        choices=TRIGGER_CHOICES,
        default="incidents",
        help="which alerts start an investigation (every-edr-alert is slow on the embedded AWS)",
    )


def quiet_moto() -> None:
    """moto warns about what a replay does on purpose (and logs every request at INFO)."""
    warnings.filterwarnings("ignore", category=UserWarning, module="moto")
    logging.getLogger("moto").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """`needle replay DIR --out FILE [--step-minutes M] [--investigate WHICH]`."""
    parser = argparse.ArgumentParser(prog="needle replay", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    quiet_moto()
    try:
        with args.out.open("w") as out:
            counts = replay(
                args.directory,
                out,
                step=timedelta(minutes=args.step_minutes) if args.step_minutes else None,
                trigger=args.investigate,
                log=sys.stderr,
            )
    except ReplayInputError as exc:
        print(f"needle replay: {exc}", file=sys.stderr)
        return 2
    print(
        f"replay: wrote {counts['events']} events and {counts['incidents']} incidents to {args.out} "
        f"in {counts['seconds']}s ({counts['notifications']} SNS notifications sent)",
        file=sys.stderr,
    )
    return 0
