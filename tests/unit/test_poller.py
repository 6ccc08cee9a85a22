"""needle.ingest.poller: incremental, bounded polling with in-memory fakes of the ingest ports."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from needle.ingest.poller import PollReport, PollSettings, poll
from needle.ingest.ports import WriteOutcome
from needle.model.event import DeviceHints, Event, MalformedRecordError
from needle.sources.mde.client import cursor_of
from needle.sources.mde.normalize import normalize

pytestmark = pytest.mark.unit

NOW = datetime(2025, 5, 12, 15, 0, tzinfo=UTC)
# The lookback fits in one window, so an unordered feed is read as one live window.
SETTINGS = PollSettings(lookback=timedelta(hours=6), overlap=timedelta(minutes=5), window=timedelta(hours=6))

Make = Callable[..., dict[str, Any]]


# --- fakes ----------------------------------------------------------------------------------


class FakeFeed:
    """The MDE normalizer over fixed pages. Like the API, a read only returns records with
    `since <= lastUpdateTime < until`; every (since, until) asked for is recorded."""

    source: str = "mde"

    def __init__(self, *pages: list[dict[str, Any]], ordered: bool = False) -> None:
        self.ordered = ordered
        self.all_pages = [list(p) for p in pages]
        self.asked: list[tuple[datetime, datetime | None]] = []

    def pages(self, since: datetime, until: datetime | None) -> Iterator[list[dict[str, Any]]]:
        self.asked.append((since, until))
        for page in self.all_pages:
            yield [raw for raw in page if self._within(raw, since, until)]

    def _within(self, raw: Any, since: datetime, until: datetime | None) -> bool:
        try:
            updated = cursor_of(raw)
        except (MalformedRecordError, AttributeError):
            return True  # the server cannot filter what it cannot read either
        return since <= updated and (until is None or updated < until)

    def cursor_of(self, raw: dict[str, Any]) -> datetime:
        return cursor_of(raw)

    def normalize(self, raw: dict[str, Any]) -> Event:
        return normalize(raw)


class BrittleFeed(FakeFeed):
    """A normalizer that trips over a shape nobody foresaw."""

    def normalize(self, raw: dict[str, Any]) -> Event:
        if raw.get("evidence") == "surprise":
            raise KeyError("entityType")
        return super().normalize(raw)


class SinkCrashError(RuntimeError):
    pass


class MemorySink:
    """Idempotent like the Events table: keyed by uid; an unchanged re-poll writes nothing."""

    def __init__(self) -> None:
        self.items: dict[str, Event] = {}
        self.creates: Counter[str] = Counter()
        self.calls = 0
        self.crash_on_call: int | None = None

    def store_page(self, events: Sequence[Event]) -> list[WriteOutcome]:
        return [self.store(event) for event in events]

    def store(self, event: Event) -> WriteOutcome:
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise SinkCrashError("DynamoDB throttled the write")
        assert event.entity_id, "the poller resolves the entity before storing"
        stored = self.items.get(event.uid)
        if stored is None:
            self.items[event.uid] = event
            self.creates[event.uid] += 1
            return WriteOutcome.CREATED
        if stored.content_hash() == event.content_hash():
            return WriteOutcome.UNCHANGED
        self.items[event.uid] = event
        return WriteOutcome.UPDATED


class HostResolver:
    def __init__(self) -> None:
        self.seen_at: list[datetime] = []

    def resolve(self, hints: DeviceHints, seen_at: datetime) -> str:
        self.seen_at.append(seen_at)
        return f"ent-{hints.hostname or hints.device_id}"


class MemoryCheckpoints:
    def __init__(self, start: datetime | None = None) -> None:
        self.cursors: dict[str, datetime] = {} if start is None else {"mde": start}
        self.saves: list[datetime] = []

    def load(self, source: str) -> datetime | None:
        return self.cursors.get(source)

    def save(self, source: str, cursor: datetime) -> None:
        self.cursors[source] = cursor
        self.saves.append(cursor)


class MemoryQuarantine:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, Any]] = []

    def put(self, source: str, reason: str, raw: Any) -> bool:
        if (source, reason, raw) in self.records:
            return False
        self.records.append((source, reason, raw))
        return True


class World:
    def __init__(self, checkpoint: datetime | None = None) -> None:
        self.sink = MemorySink()
        self.entities = HostResolver()
        self.checkpoints = MemoryCheckpoints(checkpoint)
        self.quarantine = MemoryQuarantine()

    def poll(
        self,
        feed: FakeFeed,
        *,
        settings: PollSettings = SETTINGS,
        time_left: Callable[[], float] = lambda: math.inf,
    ) -> PollReport:
        return poll(
            feed, self.sink, self.entities, self.checkpoints, self.quarantine, NOW, settings, time_left
        )

    def checkpoint(self) -> datetime | None:
        return self.checkpoints.load("mde")


def alert_id(n: int) -> str:
    return f"da63877190341552771{n}_-5833190{n}"


@pytest.fixture
def alert(mde_alert: Callable[[str], dict[str, Any]]) -> Make:
    template = mde_alert("alert_credential_dump")

    def make(n: int, updated: str, **changes: Any) -> dict[str, Any]:
        return {**template, "id": alert_id(n), "lastUpdateTime": updated, **changes}

    return make


def at(hhmm: str) -> datetime:
    hour, minute = hhmm.split(":")
    return datetime(2025, 5, 12, int(hour), int(minute), tzinfo=UTC)


# --- where a run starts, where it checkpoints -------------------------------------------------------


def test_first_run_reads_from_now_minus_lookback(alert: Make) -> None:
    feed = FakeFeed([alert(1, "2025-05-12T14:09:30.4415002Z")])
    world = World()

    report = world.poll(feed)

    assert feed.asked == [(NOW - SETTINGS.lookback, None)]
    assert report.since == NOW - SETTINGS.lookback


def test_later_runs_read_from_checkpoint_minus_overlap(alert: Make) -> None:
    feed = FakeFeed([alert(1, "2025-05-12T14:31:00Z")])
    world = World(at("14:30"))

    report = world.poll(feed)

    assert feed.asked == [(at("14:25"), None)]
    assert report.as_dict()["since"] == "2025-05-12T14:25:00+00:00"


def test_checkpoint_is_the_newest_update_seen_in_any_order(alert: Make) -> None:
    # GIVEN two pages whose update times are not ordered
    feed = FakeFeed(
        [alert(1, "2025-05-12T14:05:00Z"), alert(2, "2025-05-12T14:20:11.1234567Z")],
        [alert(3, "2025-05-12T14:10:00Z")],
    )
    world = World()
    # WHEN they are polled
    report = world.poll(feed)
    # THEN the checkpoint is the maximum update time, saved once, after the whole read
    newest = datetime(2025, 5, 12, 14, 20, 11, 123456, tzinfo=UTC)
    assert world.checkpoints.saves == [newest]
    assert report.cursor == newest
    assert report.pages == 2
    assert report.complete
    assert report.outcomes == Counter({"created": 3})
    assert set(world.sink.items) == {f"mde:{a['id']}" for page in feed.all_pages for a in page}


def test_stored_events_carry_the_resolved_entity(alert: Make) -> None:
    world = World()

    world.poll(FakeFeed([alert(1, "2025-05-12T14:05:00Z")]))

    [event] = world.sink.items.values()
    assert event.entity_id == "ent-eng-lt-117.corp.contoso.example"


def test_the_device_is_placed_at_the_alerts_activity_time_not_its_update_time(alert: Make) -> None:
    # GIVEN an alert resolved by an analyst a week after it happened (its IPs are from then)
    world = World()
    record = alert(1, "2025-05-19T14:05:00Z")
    # WHEN it is polled
    world.poll(FakeFeed([record]))
    # THEN its device (and IP leases) are placed when the activity happened
    [event] = world.sink.items.values()
    assert world.entities.seen_at == [event.time]
    assert event.time < event.updated_at - timedelta(days=6)


def test_overlap_re_read_never_moves_the_checkpoint_back(alert: Make) -> None:
    # GIVEN a previous run already stored the alert and checkpointed past it
    old = alert(1, "2025-05-12T14:28:00Z")
    world = World(at("14:30"))
    world.poll(FakeFeed([old]))
    # WHEN the overlap window shows it again
    report = world.poll(FakeFeed([old]))
    # THEN nothing is written and the checkpoint stays
    assert report.outcomes == Counter({"unchanged": 1})
    assert world.checkpoints.saves == []
    assert world.checkpoint() == at("14:30")


@pytest.mark.parametrize("checkpoint", [None, at("14:30")])
@pytest.mark.parametrize("pages", [(), ([],), ([], [])])
def test_no_records_leave_the_checkpoint_untouched(
    checkpoint: datetime | None, pages: tuple[list[dict[str, Any]], ...]
) -> None:
    world = World(checkpoint)

    report = world.poll(FakeFeed(*pages))

    assert world.checkpoints.saves == []
    assert world.checkpoint() == checkpoint
    assert report.cursor == checkpoint
    assert sum(report.outcomes.values()) == 0


# --- crash and rerun --------------------------------------------------------------------------


@pytest.mark.parametrize("checkpoint", [None, at("13:00")])
def test_crash_mid_page_keeps_checkpoint_and_rerun_stores_each_alert_once(
    alert: Make, checkpoint: datetime | None
) -> None:
    # GIVEN a page of three alerts and a sink that fails on the second write
    feed = FakeFeed(
        [alert(1, "2025-05-12T14:01:00Z"), alert(2, "2025-05-12T14:02:00Z"), alert(3, "2025-05-12T14:03:00Z")]
    )
    world = World(checkpoint)
    world.sink.crash_on_call = 2
    # WHEN the poll crashes
    with pytest.raises(SinkCrashError):
        world.poll(feed)
    # THEN the checkpoint has not moved
    assert world.checkpoints.saves == []
    assert world.checkpoint() == checkpoint
    assert len(world.sink.items) == 1

    # WHEN the next run reads the same window with a healthy sink
    world.sink.crash_on_call = None
    report = world.poll(feed)

    # THEN every alert is stored exactly once and the checkpoint moves to the newest
    assert report.outcomes == Counter({"created": 2, "unchanged": 1})
    assert world.sink.creates == Counter({f"mde:{a['id']}": 1 for a in feed.all_pages[0]})
    assert world.checkpoints.saves == [at("14:03")]


# --- bad records and duplicates ------------------------------------------------------------------


def test_malformed_record_is_quarantined_counted_and_the_page_goes_on(alert: Make) -> None:
    # GIVEN a page with an alert that has no id between two good ones
    bad = alert(2, "2025-05-12T14:02:00Z", id=None)
    feed = FakeFeed([alert(1, "2025-05-12T14:01:00Z"), bad, alert(3, "2025-05-12T14:03:00Z")])
    world = World()
    # WHEN it is polled
    report = world.poll(feed)
    # THEN the bad record is quarantined with its reason, and the good ones are stored
    [(source, reason, raw)] = world.quarantine.records
    assert source == "mde"
    assert "'id'" in reason
    assert raw is bad
    assert report.outcomes == Counter({"created": 2, "quarantined": 1})
    assert report.as_dict()["quarantined"] == 1
    assert len(world.sink.items) == 2
    assert world.checkpoints.saves == [at("14:03")]


def test_a_record_that_is_not_an_object_is_quarantined(alert: Make) -> None:
    # GIVEN a page carrying a bare string (it has no cursor either) before a good alert
    page = [cast(dict[str, Any], "not an alert"), alert(1, "2025-05-12T14:01:00Z")]
    world = World()

    report = world.poll(FakeFeed(page))

    assert report.outcomes == Counter({"created": 1, "quarantined": 1})
    assert world.quarantine.records == [("mde", "alert is not a JSON object", "not an alert")]
    assert world.checkpoints.saves == [at("14:01")]


def test_an_unexpected_normalizer_error_is_quarantined_not_fatal(alert: Make) -> None:
    odd = alert(2, "2025-05-12T14:02:00Z", evidence="surprise")
    world = World()

    report = world.poll(BrittleFeed([odd, alert(1, "2025-05-12T14:01:00Z")]))

    assert report.outcomes == Counter({"created": 1, "quarantined": 1})
    assert world.quarantine.records == [("mde", "unexpected record shape (KeyError)", odd)]


def test_a_quarantined_record_still_advances_the_cursor(alert: Make) -> None:
    world = World()

    world.poll(FakeFeed([alert(1, "2025-05-12T14:01:00Z"), alert(2, "2025-05-12T14:07:00Z", title="")]))

    assert world.checkpoints.saves == [at("14:07")]


def test_the_same_version_twice_in_one_pass_is_a_duplicate(alert: Make) -> None:
    # GIVEN the same alert version on two pages (it moved while we paged)
    same = alert(1, "2025-05-12T14:01:00Z")
    feed = FakeFeed([same, alert(2, "2025-05-12T14:02:00Z")], [dict(same)])
    world = World()
    # WHEN polled
    report = world.poll(feed)
    # THEN it is stored once and counted as a duplicate
    assert report.outcomes == Counter({"created": 2, "duplicate": 1})
    assert report.as_dict()["duplicate"] == 1
    assert world.sink.calls == 2


def test_a_newer_version_in_the_same_pass_is_an_update(alert: Make) -> None:
    first = alert(1, "2025-05-12T14:01:00Z", status="New")
    later = alert(1, "2025-05-12T14:06:00Z", status="Resolved")
    world = World()

    report = world.poll(FakeFeed([first], [later]))

    assert report.outcomes == Counter({"created": 1, "updated": 1})
    assert world.sink.items[f"mde:{first['id']}"].status == "resolved"


def test_an_out_of_range_timestamp_is_quarantined_not_fatal(alert: Make) -> None:
    # GIVEN an alert whose firstEventTime is year 1 at +01:00 (before datetime's range in UTC)
    odd = alert(1, "2025-05-12T14:01:00Z", firstEventTime="0001-01-01T00:00:00+01:00")
    feed = FakeFeed([odd, alert(2, "2025-05-12T14:02:00Z")])
    world = World()
    # WHEN it is polled
    report = world.poll(feed)
    # THEN it is quarantined as malformed, the rest of the page is stored, and the cursor moves
    assert report.outcomes == Counter({"created": 1, "quarantined": 1})
    [(source, reason, raw)] = world.quarantine.records
    assert (source, raw) == ("mde", odd)
    assert reason.startswith("unparseable timestamp '0001-01-01T00:00:00+01:00'")
    assert set(world.sink.items) == {f"mde:{alert_id(2)}"}
    assert world.checkpoints.saves == [at("14:02")]


class PickyResolver(HostResolver):
    """Refuses devices it cannot place, like the entity store does for hints with no identity."""

    def resolve(self, hints: DeviceHints, seen_at: datetime) -> str:
        if hints.hostname == "nowhere":
            raise ValueError("device hints carry no usable identity")
        return super().resolve(hints, seen_at)


def test_an_unresolvable_entity_is_quarantined_not_fatal(alert: Make) -> None:
    # GIVEN an alert whose device the resolver cannot place, before a good one
    lost = alert(1, "2025-05-12T14:01:00Z", computerDnsName="nowhere")
    world = World()
    world.entities = PickyResolver()
    # WHEN it is polled
    report = world.poll(FakeFeed([lost, alert(2, "2025-05-12T14:02:00Z")]))
    # THEN it is quarantined with the resolver's reason and the pass goes on to the checkpoint
    assert report.outcomes == Counter({"created": 1, "quarantined": 1})
    assert world.quarantine.records == [("mde", "no entity: device hints carry no usable identity", lost)]
    assert set(world.sink.items) == {f"mde:{alert_id(2)}"}
    assert world.checkpoints.saves == [at("14:02")]


@pytest.mark.parametrize("ordered", [False, True])
def test_a_record_from_the_future_never_moves_the_checkpoint_past_now(alert: Make, ordered: bool) -> None:
    # GIVEN an alert stamped in 2099 (vendor clock or attacker) beside a normal one
    future = alert(1, "2099-01-01T00:00:00Z")
    feed = FakeFeed([future, alert(2, "2025-05-12T14:02:00Z")], ordered=ordered)
    world = World()
    # WHEN it is polled
    report = world.poll(feed)
    # THEN both are stored, but the checkpoint stops at our own clock
    assert report.outcomes == Counter({"created": 2})
    assert world.checkpoints.saves == [NOW]
    assert report.cursor == NOW

    # AND the next run still reads from now (less the overlap), not from 2099
    world.poll(feed)
    assert feed.asked[1] == (NOW - SETTINGS.overlap, None)


# --- unordered feeds: bounded windows ---------------------------------------------------------------

LONG = PollSettings(lookback=timedelta(hours=20), overlap=timedelta(minutes=5), window=timedelta(hours=6))


def test_a_long_lookback_is_read_in_closed_windows_then_the_live_edge(alert: Make) -> None:
    # GIVEN a 20 h lookback read in 6 h windows, and alerts in the first and last windows
    feed = FakeFeed([alert(1, "2025-05-11T20:00:00Z"), alert(2, "2025-05-12T14:30:00Z")])
    world = World()
    # WHEN polled
    report = world.poll(feed, settings=LONG)
    # THEN closed windows are read with an upper bound; after the empty one the next window is
    # twice as wide, which reaches the live edge, read without a bound
    assert feed.asked == [
        (NOW - timedelta(hours=20), NOW - timedelta(hours=14)),
        (NOW - timedelta(hours=14), NOW - timedelta(hours=8)),
        (NOW - timedelta(hours=8), None),
    ]
    # AND each closed window checkpoints at its bound, the live edge at the newest update seen
    assert world.checkpoints.saves == [
        NOW - timedelta(hours=14),
        NOW - timedelta(hours=8),
        at("14:30"),
    ]
    assert report.outcomes == Counter({"created": 2})
    assert report.complete


def test_a_run_short_of_time_stops_at_a_window_bound(alert: Make) -> None:
    # GIVEN a Lambda with less time left than the reserve
    feed = FakeFeed([alert(1, "2025-05-11T20:00:00Z"), alert(2, "2025-05-12T14:30:00Z")])
    world = World()
    # WHEN polled
    report = world.poll(feed, settings=LONG, time_left=lambda: LONG.reserve_seconds - 1)
    # THEN only the first window is read and checkpointed, and the report says so
    assert feed.asked == [(NOW - timedelta(hours=20), NOW - timedelta(hours=14))]
    assert world.checkpoint() == NOW - timedelta(hours=14)
    assert report.cursor == NOW - timedelta(hours=14)
    assert not report.complete
    assert report.as_dict()["complete"] is False
    assert report.outcomes == Counter({"created": 1})

    # WHEN the next run goes on from there
    world.poll(feed, settings=LONG)
    assert feed.asked[1] == (NOW - timedelta(hours=14, minutes=5), NOW - timedelta(hours=8, minutes=5))
    assert world.sink.creates == Counter({f"mde:{alert_id(n)}": 1 for n in (1, 2)})


def test_a_crash_in_a_later_window_keeps_the_earlier_windows(alert: Make) -> None:
    feed = FakeFeed([alert(1, "2025-05-11T20:00:00Z"), alert(2, "2025-05-12T14:30:00Z")])
    world = World()
    world.sink.crash_on_call = 2

    with pytest.raises(SinkCrashError):
        world.poll(feed, settings=LONG)

    # the crash hit the live edge: the closed windows before it stay checkpointed
    assert world.checkpoint() == NOW - timedelta(hours=8)
    assert len(world.sink.items) == 1


# --- ordered feeds: a checkpoint per page ------------------------------------------------------------


def test_an_ordered_feed_checkpoints_after_every_page(alert: Make) -> None:
    feed = FakeFeed(
        [alert(1, "2025-05-12T14:01:00Z"), alert(2, "2025-05-12T14:02:00Z")],
        [alert(3, "2025-05-12T14:03:00Z")],
        ordered=True,
    )
    world = World()

    report = world.poll(feed, settings=LONG)

    assert feed.asked == [(NOW - LONG.lookback, None)]
    assert world.checkpoints.saves == [at("14:02"), at("14:03")]
    assert report.pages == 2


def test_an_ordered_feed_crash_keeps_the_pages_already_stored(alert: Make) -> None:
    # GIVEN an ordered feed whose second page hits a failing sink
    feed = FakeFeed(
        [alert(1, "2025-05-12T14:01:00Z"), alert(2, "2025-05-12T14:02:00Z")],
        [alert(3, "2025-05-12T14:03:00Z")],
        ordered=True,
    )
    world = World()
    world.sink.crash_on_call = 3
    # WHEN the poll crashes
    with pytest.raises(SinkCrashError):
        world.poll(feed)
    # THEN the checkpoint covers the first page only, and a rerun completes the rest once
    assert world.checkpoint() == at("14:02")
    world.sink.crash_on_call = None
    report = world.poll(feed)
    assert feed.asked[1] == (at("13:57"), None)
    assert report.outcomes == Counter({"unchanged": 2, "created": 1})
    assert world.sink.creates == Counter({f"mde:{a['id']}": 1 for page in feed.all_pages for a in page})
    assert world.checkpoint() == at("14:03")


def test_an_ordered_feed_short_of_time_stops_after_a_page(alert: Make) -> None:
    feed = FakeFeed([alert(1, "2025-05-12T14:01:00Z")], [alert(2, "2025-05-12T14:02:00Z")], ordered=True)
    world = World()

    report = world.poll(feed, time_left=lambda: 0.0)

    assert report.pages == 1
    assert not report.complete
    assert world.checkpoints.saves == [at("14:01")]
