"""A poller killed at random points during a 10,000-alert backfill, restarted until done, ends
with exactly the 10,000 alerts stored: once each, none lost, the checkpoint at the newest.

The real poll() runs over real HTTP against a vendor simulator and writes through the real
adapters into the embedded AWS. The adapters are wrapped so that each run (a Lambda container)
gets a random budget of tokens; every kill point spends some, and the point that spends the last
raises `Killed`: before or after a stored chunk of a page, inside the checkpoint save before or after the real
save, or between pages (time_left). A store point spends one token, a checkpoint or between-pages
point BOUNDARY_COST: there are 16-odd store points per checkpoint and only three boundary points,
which would otherwise be hit less often. A restart is a new poll() with fresh adapters, feed,
HTTP client and OAuth tokens, one minute later.

CrowdStrike is an ordered feed (a checkpoint after every page); MDE is unordered (read in windows,
each checkpointed at its end). Both use the same kill switch with the same budgets.

Cost (CPU-bound, one core): alerts are written 25 per BatchWriteItem after one BatchGetItem per
page, ~2 ms per alert through botocore into moto; every simulator listing parses all 10,000
alerts' timestamps (100-200 ms). Units of progress of ~200 alerts and budgets of up to MAX_TOKENS
give ~25 kills (all five kinds of point hit) while keeping re-reads near 2,500 alerts and listings
near 70 per vendor.
"""

from __future__ import annotations

import random
import ssl
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from needle.ingest.poller import PollReport, PollSettings, poll
from needle.ingest.ports import AlertFeed, WriteOutcome
from needle.model.event import Event
from needle.sources.crowdstrike.client import CrowdStrikeClient, FalconTokens
from needle.sources.crowdstrike.feed import CrowdStrikeFeed
from needle.sources.http import EntraClientCredentials
from needle.sources.mde.client import SCOPE, MdeClient
from needle.sources.mde.feed import MdeFeed
from needle.store.entities import DynamoEntityResolver
from needle.store.events import DynamoEventStore
from needle.store.quarantine import S3Quarantine
from needle.store.state import DynamoCheckpoints
from needle_local.embedded import EmbeddedAws
from needle_local.simulators.crowdstrike import CrowdStrikeSimulator, cs_timestamp
from needle_local.simulators.mde import MdeSimulator
from tests.support import bind_stack_tables, mde_alert

pytestmark = pytest.mark.integration

ALERTS = 10_000
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)  # the first run's clock; each restart is a minute later
NEWEST = NOW - timedelta(minutes=1)  # the newest alert's update time
SPREAD = timedelta(days=10)  # update times are spread evenly over the 10 days up to NEWEST
# Covers the spread with a day to spare: even 200 restarts before the first checkpoint lose nothing.
LOOKBACK = timedelta(days=11)
STORE_CHUNK = 25  # alerts per BatchWriteItem request: a store kill point before and after each
PAGE = 200  # CrowdStrike page: 8 chunks, 16 store kill points between checkpoints
WINDOW = timedelta(hours=5)  # MDE window: ~208 alerts, ~18 store kill points; 48 windows hold alerts
BOUNDARY_COST = 4  # tokens spent by a checkpoint-save or between-pages kill point (store: 1)
BOUNDARY_POINTS = ("before checkpoint save", "after checkpoint save", "between pages")
MAX_TOKENS = 140  # a run's budget is drawn from 1..MAX_TOKENS
MAX_RESTARTS = 200
MIN_KILLS = 10
SEED = 20250314
CS_SECRET = "sim-secret-cs"
MDE_SECRET = "sim-secret-mde"
# Plain HTTP never uses it, but httpx builds one per client unless given one: build it once.
TLS = ssl.create_default_context()


class Killed(BaseException):
    """What a Lambda timeout or crash looks like to the poller: nothing after it runs."""


class Clock:
    """The vendor's and the poller's clock: each restart happens a minute later."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class KillSwitch:
    """Each run is armed with a random budget of tokens; every kill point spends `cost` of them,
    and the point that spends the last one kills the run."""

    rng: random.Random
    max_tokens: int
    tokens: int = 0
    kills: Counter[str] = field(default_factory=Counter)

    def arm(self) -> None:
        self.tokens = self.rng.randint(1, self.max_tokens)

    def point(self, where: str, cost: int = 1) -> None:
        self.tokens -= cost
        if self.tokens <= 0:
            self.kills[where] += 1
            raise Killed(where)


class KillableEvents(DynamoEventStore):
    def __init__(self, switch: KillSwitch, outcomes: Counter[str]) -> None:
        super().__init__()
        self._switch = switch
        self._outcomes = outcomes

    def store_page(self, events: Sequence[Event]) -> list[WriteOutcome]:
        # The real store writes a page in BatchWriteItem requests of 25: a crash can fall
        # between any two of them, so the page is stored here in chunks of that size.
        outcomes: list[WriteOutcome] = []
        for start in range(0, len(events), STORE_CHUNK):
            self._switch.point("before store")
            chunk = super().store_page(events[start : start + STORE_CHUNK])
            self._outcomes.update(o.value for o in chunk)  # counted across runs, killed or not
            self._switch.point("after store")
            outcomes += chunk
        return outcomes


class KillableCheckpoints(DynamoCheckpoints):
    def __init__(self, switch: KillSwitch) -> None:
        super().__init__()
        self._switch = switch

    def save(self, source: str, cursor: datetime) -> None:
        self._switch.point("before checkpoint save", BOUNDARY_COST)
        super().save(source, cursor)
        self._switch.point("after checkpoint save", BOUNDARY_COST)


@dataclass
class Backfill:
    """What the restarts did, for the assertions and for the failure messages."""

    runs: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    last: PollReport | None = None


FeedFactory = Callable[[httpx.Client], AlertFeed]


def backfill_until_done(
    aws: EmbeddedAws, clock: Clock, new_feed: FeedFactory, settings: PollSettings
) -> Backfill:
    """Run poll() over and over, each run a fresh container, until one completes unkilled."""
    switch = KillSwitch(random.Random(SEED), MAX_TOKENS)
    done = Backfill(kills=switch.kills)

    def time_left() -> float:
        switch.point("between pages", BOUNDARY_COST)
        return float("inf")

    while done.runs <= MAX_RESTARTS:
        done.runs += 1
        switch.arm()
        with httpx.Client(timeout=10, verify=TLS, trust_env=False) as http:
            try:
                report = poll(
                    new_feed(http),
                    KillableEvents(switch, done.outcomes),
                    DynamoEntityResolver(),
                    KillableCheckpoints(switch),
                    S3Quarantine(aws.client("s3"), aws.physical["ReportsBucket"]),
                    clock(),
                    settings,
                    time_left,
                )
            except Killed:
                report = None
        clock.now += timedelta(minutes=1)
        if report is not None:
            done.last = report
            if report.complete:
                return done
    pytest.fail(
        f"the backfill did not complete in {MAX_RESTARTS} restarts: {sum(done.kills.values())} kills "
        f"({dict(done.kills)}), outcomes so far {dict(done.outcomes)}"
    )


def update_times() -> list[datetime]:
    step = SPREAD / (ALERTS - 1)
    return [NEWEST - (ALERTS - 1 - n) * step for n in range(ALERTS)]


def assert_stored_exactly_once(aws: EmbeddedAws, source: str, ids: list[str], done: Backfill) -> None:
    # One paginated Scan gives both the count and the ids (moto re-sorts the whole table for
    # every page, so a second, Select=COUNT scan would cost as much again).
    count = 0
    stored: Counter[str] = Counter()
    pages = aws.client("dynamodb").get_paginator("scan")
    for page in pages.paginate(TableName=aws.physical["EventsTable"], ProjectionExpression="vendor_id"):
        count += page["Count"]
        stored.update(item["vendor_id"]["S"] for item in page["Items"])
    assert count == ALERTS
    assert stored == Counter(ids)  # each vendor id exactly once, none missing
    assert DynamoCheckpoints().load(source) == NEWEST
    # Nothing went to quarantine, nothing was created twice, no re-read rewrote an item.
    listed = aws.client("s3").list_objects_v2(Bucket=aws.physical["ReportsBucket"], Prefix="quarantine/")
    assert listed.get("KeyCount", 0) == 0
    assert done.outcomes["created"] == ALERTS
    assert done.outcomes["updated"] == 0
    # The kills were real (the test cannot pass by never killing) and hit both kinds of point.
    assert sum(done.kills.values()) >= MIN_KILLS, done.kills
    assert done.kills["before store"] + done.kills["after store"] > 0, done.kills
    assert sum(done.kills[p] for p in BOUNDARY_POINTS) > 0, done.kills
    assert done.last is not None
    assert done.last.complete


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def stack() -> Iterator[EmbeddedAws]:
    parameters = {"EnableMde": "true", "LogLevel": "WARNING", "InvestigationTrigger": "none"}
    with EmbeddedAws(parameters=parameters) as aws:
        bind_stack_tables(aws)
        yield aws


# -- CrowdStrike: ordered, a checkpoint after every page ---------------------------------------

CID = "7d3e2f1a0b9c48d7a6e5f4c3b2a19080"
AID = "c4a1e9f27b3d4e58a0f6b2d9e7c13a54"


def cs_alert(n: int, updated: datetime) -> dict[str, Any]:
    composite_id = f"{CID}:ind:{AID}:{88213400000 + n}-10197-{n}"
    return {
        "composite_id": composite_id,
        "id": composite_id.split(":", 1)[1],
        "cid": CID,
        "agent_id": AID,
        "name": "CredentialDumpingLsassComsvcs",
        "display_name": "LSASS memory dumped with comsvcs.dll MiniDump",
        "severity": 70,
        "severity_name": "High",
        "status": "new",
        "product": "epp",
        "type": "ldt",
        "tactic": "Credential Access",
        "tactic_id": "TA0006",
        "technique_id": "T1003.001",
        "timestamp": cs_timestamp(updated - timedelta(minutes=3)),
        "created_timestamp": cs_timestamp(updated - timedelta(minutes=1)),
        "updated_timestamp": cs_timestamp(updated),
        "falcon_host_link": f"https://falcon.crowdstrike.com/activity-v2/detections/{composite_id}",
        "user_name": "m.okafor",
        "filename": "rundll32.exe",
        "cmdline": "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 712 C:\\Temp\\l.dmp full",
        "device": {
            "device_id": AID,
            "hostname": "FIN-LT-0193",
            "local_ip": "10.42.8.193",
            "platform_name": "Windows",
            "status": "normal",
        },
    }


def test_crowdstrike_backfill_killed_at_random_points_stores_every_alert_once(
    stack: EmbeddedAws, clock: Clock
) -> None:
    # GIVEN 10,000 alerts updated over the ten days before now, and an empty stack
    with CrowdStrikeSimulator(clock=clock, client_secret=CS_SECRET) as sim:
        alerts = [cs_alert(n, at) for n, at in enumerate(update_times())]
        for alert in alerts:
            sim.add_alert(alert)

        def new_feed(http: httpx.Client) -> AlertFeed:
            tokens = FalconTokens(http, sim.base_url, "sim-client", CS_SECRET)
            return CrowdStrikeFeed(CrowdStrikeClient(http, sim.base_url, tokens, page_size=PAGE))

        # WHEN the poller is killed at random points and restarted until a run completes
        done = backfill_until_done(stack, clock, new_feed, PollSettings(lookback=LOOKBACK))
    # THEN exactly the 10,000 alerts are stored, and the checkpoint is at the newest update time
    assert_stored_exactly_once(stack, "crowdstrike", [a["composite_id"] for a in alerts], done)


# -- MDE: unordered, read in windows checkpointed at their end ---------------------------------


def test_mde_backfill_killed_at_random_points_stores_every_alert_once(
    stack: EmbeddedAws, clock: Clock
) -> None:
    # GIVEN 10,000 alerts updated over the ten days before now (about 48 windows), and an empty stack
    with MdeSimulator(clock=clock, client_secret=MDE_SECRET) as sim:
        alerts = [
            # mde_alert stamps lastUpdateTime 20 s after `at`
            mde_alert(f"da{638766000000000000 + n}_{-1402937711 - n}", at - timedelta(seconds=20))
            for n, at in enumerate(update_times())
        ]
        for alert in alerts:
            sim.add_alert(alert)

        def new_feed(http: httpx.Client) -> AlertFeed:
            tokens = EntraClientCredentials(
                http=http,
                login_base_url=sim.base_url,
                tenant_id="sim-tenant",
                client_id="sim-client",
                client_secret=MDE_SECRET,
                scope=SCOPE,
            )
            return MdeFeed(MdeClient(http, sim.base_url, tokens))

        # WHEN the poller is killed at random points and restarted until a run completes
        settings = PollSettings(lookback=LOOKBACK, window=WINDOW)
        done = backfill_until_done(stack, clock, new_feed, settings)
    # THEN exactly the 10,000 alerts are stored, and the checkpoint is at the newest update time
    assert_stored_exactly_once(stack, "mde", [a["id"] for a in alerts], done)
