"""The MDE poller against the simulator over real HTTP, storing into the embedded AWS."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from needle.ingest.poller import PollSettings, poll
from needle.sources.http import EntraClientCredentials
from needle.sources.mde.client import SCOPE, MdeClient
from needle.sources.mde.feed import MdeFeed
from needle.store.entities import DynamoEntityResolver
from needle.store.events import DynamoEventStore
from needle.store.quarantine import S3Quarantine
from needle.store.state import DynamoCheckpoints
from tests.conftest import SIM_CREDENTIALS, SimClock
from tests.support import bind_stack_tables, mde_alert, scan

pytestmark = pytest.mark.integration


def _seed(mde: Any, clock: SimClock, count: int) -> list[str]:
    ids = []
    for n in range(count):
        alert = mde_alert(f"da63876600123456{n:02d}_-1402937711", clock.now - timedelta(minutes=30 - n))
        mde.add_alert(alert, visible_at=clock.now - timedelta(minutes=1))
        ids.append(alert["id"])
    return ids


def test_two_polls_over_the_same_window_store_one_event(aws: Any, mde: Any, sim_clock: SimClock) -> None:
    # GIVEN one alert visible in the vendor API
    _seed(mde, sim_clock, 1)
    # WHEN the schedule fires twice over the same window
    first = aws.tick()[0]
    second = aws.tick()[0]
    # THEN the alert is stored once; the second poll re-read it unchanged
    assert (first["created"], second["created"], second["unchanged"]) == (1, 0, 1)
    assert len(scan(aws, "EventsTable")) == 1


class Killed(BaseException):
    """What a Lambda timeout or crash looks like to the poller: nothing after it runs."""


class CrashingCheckpoints(DynamoCheckpoints):
    def save(self, source: str, cursor: datetime) -> None:
        raise Killed


def test_poller_killed_between_write_and_checkpoint_rereads_without_duplicates(
    aws: Any, mde: Any, sim_clock: SimClock
) -> None:
    # GIVEN five alerts and a poller that dies right after storing them, before its checkpoint
    ids = _seed(mde, sim_clock, 5)
    bind_stack_tables(aws)
    tokens = EntraClientCredentials(
        http=httpx.Client(timeout=10),
        login_base_url=mde.base_url,
        tenant_id=SIM_CREDENTIALS["tenant_id"],
        client_id=SIM_CREDENTIALS["client_id"],
        client_secret=SIM_CREDENTIALS["client_secret"],
        scope=SCOPE,
    )
    feed = MdeFeed(MdeClient(tokens.http, mde.base_url, tokens))
    quarantine = S3Quarantine(aws.client("s3"), aws.physical["ReportsBucket"])
    # one window, so the only checkpoint comes after the writes
    one_window = PollSettings(lookback=timedelta(days=1), window=timedelta(days=2))
    with pytest.raises(Killed):
        poll(
            feed,
            DynamoEventStore(),
            DynamoEntityResolver(),
            CrashingCheckpoints(),
            quarantine,
            datetime.now(UTC),
            one_window,
        )
    assert len(scan(aws, "EventsTable")) == 5
    assert DynamoCheckpoints().load("mde") is None
    # WHEN the next scheduled tick runs the real poller
    report = aws.tick()[0]
    # THEN it re-read the window: nothing lost, nothing twice, and the checkpoint moved
    assert (report["created"], report["unchanged"]) == (0, 5)
    stored = sorted(i["vendor_id"]["S"] for i in scan(aws, "EventsTable"))
    assert stored == sorted(ids)
    assert DynamoCheckpoints().load("mde") is not None


def test_vendor_update_changes_the_event_in_place_without_a_new_investigation(
    aws: Any, mde: Any, sim_clock: SimClock
) -> None:
    [alert_id] = _seed(mde, sim_clock, 1)
    aws.tick()
    aws.settle()
    investigations = len(aws.executions())
    # WHEN the analyst resolves the alert in the vendor console
    mde.update_alert(alert_id, at=sim_clock.now - timedelta(seconds=30), status="Resolved")
    report = aws.tick()[0]
    aws.settle()
    # THEN one item, updated in place, and the update (a MODIFY) triggered nothing
    assert report["updated"] == 1
    [item] = scan(aws, "EventsTable")
    assert item["status"]["S"] == "resolved"
    assert "score" in item  # the score written back by ProcessEvents survived the update
    assert len(aws.executions()) == investigations == 1


def test_a_material_vendor_update_is_rescored_and_investigated_again(
    aws: Any, mde: Any, sim_clock: SimClock
) -> None:
    [alert_id] = _seed(mde, sim_clock, 1)
    aws.tick()
    aws.settle()
    # WHEN the vendor adds lateral movement to the alert (a new technique, new evidence)
    mde.update_alert(
        alert_id,
        at=sim_clock.now - timedelta(seconds=30),
        mitreTechniques=["T1003.001", "T1021.002"],
        evidence=[
            *mde_alert(alert_id, sim_clock.now)["evidence"],
            {"entityType": "File", "fileName": "psexesvc.exe"},
        ],
    )
    report = aws.tick()[0]
    aws.settle()
    # THEN the one stored event is updated in place, re-scored and investigated a second time
    assert report["updated"] == 1
    [item] = scan(aws, "EventsTable")
    assert item["techniques"]["L"] == [{"S": "T1003.001"}, {"S": "T1021.002"}]
    assert item["explanation"]["S"].endswith("re-scored: the vendor changed the alert")
    assert item["rescore"] == {"BOOL": False}  # the write-back cleared it: no loop
    assert len(aws.executions()) == 2
    # AND a later workflow change (the analyst resolves it) triggers nothing more
    mde.update_alert(alert_id, at=sim_clock.now - timedelta(seconds=10), status="Resolved")
    assert aws.tick()[0]["updated"] == 1
    aws.settle()
    assert len(aws.executions()) == 2


def test_malformed_record_is_quarantined_and_the_rest_of_the_page_stored(
    aws: Any, mde: Any, sim_clock: SimClock
) -> None:
    good = mde_alert("da638766001234567890_-1", sim_clock.now - timedelta(minutes=20))
    bad = mde_alert("da638766001234567890_-2", sim_clock.now - timedelta(minutes=19))
    bad["title"] = ""
    for alert in (bad, good):
        mde.add_alert(alert, visible_at=sim_clock.now - timedelta(minutes=1))
    report = aws.tick()[0]
    assert (report["created"], report["quarantined"]) == (1, 1)
    s3 = aws.client("s3")
    [obj] = s3.list_objects_v2(Bucket=aws.physical["ReportsBucket"], Prefix="quarantine/mde/")["Contents"]
    body = s3.get_object(Bucket=aws.physical["ReportsBucket"], Key=obj["Key"])["Body"].read().decode()
    assert "missing or empty 'title'" in body
    assert bad["id"] in body
    assert [i["vendor_id"]["S"] for i in scan(aws, "EventsTable")] == [good["id"]]


def test_a_quarantined_record_read_again_is_kept_and_counted_once(
    aws: Any, mde: Any, sim_clock: SimClock
) -> None:
    # GIVEN a malformed record that the next poll reads again through its overlap
    bad = mde_alert("da638766001234567890_-3", sim_clock.now - timedelta(minutes=2))
    bad["title"] = ""
    mde.add_alert(bad, visible_at=sim_clock.now - timedelta(minutes=1))
    first = aws.tick()[0]
    sim_clock.now += timedelta(minutes=1)
    # WHEN polled again
    second = aws.tick()[0]
    # THEN the first sighting is quarantined, the second is a duplicate, and one object is kept
    assert (first["quarantined"], second["quarantined"], second["duplicate"]) == (1, 0, 1)
    listing = aws.client("s3").list_objects_v2(Bucket=aws.physical["ReportsBucket"], Prefix="quarantine/mde/")
    assert listing["KeyCount"] == 1


def test_expired_token_is_refreshed_once(aws: Any, mde: Any, sim_clock: SimClock) -> None:
    _seed(mde, sim_clock, 1)
    aws.tick()
    tokens_before = _token_requests(mde)
    mde.expire_tokens()
    report = aws.tick()[0]
    assert report["unchanged"] == 1
    assert _token_requests(mde) == tokens_before + 1


def test_throttling_honours_retry_after(aws: Any, mde: Any, sim_clock: SimClock) -> None:
    _seed(mde, sim_clock, 1)
    mde.throttle_next(1, retry_after_seconds=1)
    started = time.monotonic()
    report = aws.tick()[0]
    waited = time.monotonic() - started
    assert report["created"] == 1
    assert waited >= 1.0  # the vendor asked for one second and got it


def test_server_errors_are_retried(aws: Any, mde: Any, sim_clock: SimClock) -> None:
    _seed(mde, sim_clock, 2)
    mde.fail_next(2, status=503)
    assert aws.tick()[0]["created"] == 2


def _token_requests(mde: Any) -> int:
    return sum(count for key, count in mde.requests.items() if key.startswith("POST") and "token" in key)
