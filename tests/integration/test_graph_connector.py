"""The Graph alerts_v2 connector over real HTTP: GraphSimulator's API contract, then client, feed and
poller against it (nextLink paging, the $skip ceiling, tokens expiring mid-read, 429, 5xx, updates)."""

from __future__ import annotations

import copy
import json
import ssl
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from needle.ingest.poller import PollSettings, poll
from needle.ingest.ports import WriteOutcome
from needle.model.event import DeviceHints, Event
from needle.sources.graph.client import GraphClient, cursor_of, graph_tokens
from needle.sources.graph.feed import GraphFeed
from needle.sources.http import RetryPolicy
from needle_local.simulators.graph import GraphSimulator, graph_timestamp

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "graph" / "alert_every_evidence_type.json"
NOW = datetime(2025, 6, 17, 12, 0, tzinfo=UTC)
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ALERTS = "/v1.0/security/alerts_v2"
# Plain HTTP never uses it, but httpx builds one per client unless given one: build it once.
TLS = ssl.create_default_context()
TEMPLATE: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))


class Clock:
    """The simulated vendor's clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def sim(clock: Clock) -> Iterator[GraphSimulator]:
    with GraphSimulator(clock=clock, client_secret="graph-sim-secret") as simulator:
        yield simulator


@pytest.fixture
def http(sim: GraphSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=10, verify=TLS) as client:
        yield client


def grant(http: httpx.Client, scope: str = GRAPH_SCOPE) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": "sim-client",
        "client_secret": "graph-sim-secret",
        "scope": scope,
    }
    return http.post("/sim-tenant/oauth2/v2.0/token", data=form)


@pytest.fixture
def auth(http: httpx.Client) -> dict[str, str]:
    response = grant(http)
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def make_alert(n: int, updated: datetime, **changes: Any) -> dict[str, Any]:
    """A full alert (every evidence type) with its own id and times."""
    alert = copy.deepcopy(TEMPLATE)
    alert_id = f"da6387912455{n:08d}_-1873326650"
    alert.update(
        id=alert_id,
        providerAlertId=alert_id,
        createdDateTime=graph_timestamp(updated - timedelta(minutes=2)),
        firstActivityDateTime=graph_timestamp(updated - timedelta(minutes=5)),
        lastUpdateDateTime=graph_timestamp(updated),
        alertWebUrl=f"https://security.microsoft.com/alerts/{alert_id}",
        **changes,
    )
    return alert


def small_alert(n: int, updated: datetime) -> dict[str, Any]:
    """A lean alert for bulk tests: the device evidence only."""
    alert_id = f"da6387912455{n:08d}_-1873326650"
    return {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": alert_id,
        "title": "Suspicious PowerShell command line",
        "severity": "low",
        "status": "new",
        "category": "Execution",
        "createdDateTime": graph_timestamp(updated - timedelta(minutes=1)),
        "lastUpdateDateTime": graph_timestamp(updated),
        "evidence": [TEMPLATE["evidence"][0]],
    }


def list_ids(http: httpx.Client, auth: dict[str, str], **params: str | int) -> list[str]:
    response = http.get(ALERTS, params=params, headers=auth)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["value"]]


def assert_graph_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    return error


def client_for(
    sim: GraphSimulator, *, page_size: int = 1000, policy: RetryPolicy | None = None
) -> GraphClient:
    http = httpx.Client(timeout=10, verify=TLS)
    tokens = graph_tokens(http, sim.base_url, "sim-tenant", "sim-client", "graph-sim-secret")
    return GraphClient(
        http, sim.base_url, tokens, page_size=page_size, policy=policy or RetryPolicy(base_delay=0.01)
    )


# -- the simulator: tokens and errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Access token is empty."),
        ({"Authorization": "Bearer not-a-token"}, "Access token validation failure."),
    ],
)
def test_calls_without_a_valid_token_get_graphs_401(
    http: httpx.Client, headers: dict[str, str], message: str
) -> None:
    error = assert_graph_error(http.get(ALERTS, headers=headers), 401, "InvalidAuthenticationToken")

    assert error["message"] == message


def test_a_token_for_another_resource_is_refused(http: httpx.Client) -> None:
    # GIVEN a token minted for the MDE API instead of Graph
    token = grant(http, scope="https://api.securitycenter.microsoft.com/.default").json()["access_token"]
    # WHEN it is used on Graph THEN the audience is wrong
    response = http.get(ALERTS, headers={"Authorization": f"Bearer {token}"})
    assert assert_graph_error(response, 401, "InvalidAuthenticationToken")["message"].endswith(
        "Invalid audience."
    )


def test_expired_tokens_get_401_and_a_fresh_grant_works(
    sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.expire_tokens()

    assert_graph_error(http.get(ALERTS, headers=auth), 401, "InvalidAuthenticationToken")
    fresh = {"Authorization": f"Bearer {grant(http).json()['access_token']}"}
    assert http.get(ALERTS, headers=fresh).status_code == 200


def test_throttling_and_failures_use_graphs_error_shape(
    sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.throttle_next(1, retry_after_seconds=3)
    sim.fail_next(1, status=503)
    sim.fail_next(1)

    throttled = http.get(ALERTS, headers=auth)
    assert_graph_error(throttled, 429, "TooManyRequests")
    assert throttled.headers["Retry-After"] == "3"
    assert_graph_error(http.get(ALERTS, headers=auth), 503, "serviceNotAvailable")
    assert_graph_error(http.get(ALERTS, headers=auth), 500, "generalException")
    assert http.get(ALERTS, headers=auth).status_code == 200
    assert sim.requests[f"GET {ALERTS}"] == 4


def test_rate_limit_per_minute_throttles_with_retry_after(clock: Clock) -> None:
    # GIVEN a tenant that allows two calls a minute
    with (
        GraphSimulator(clock=clock, rate_limit_per_minute=2) as sim,
        httpx.Client(base_url=sim.base_url, verify=TLS) as http,
    ):
        token = http.post(
            "/sim-tenant/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sim-client",
                "client_secret": "sim-secret",
                "scope": GRAPH_SCOPE,
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        # WHEN a third call comes within the minute
        statuses = [http.get(ALERTS, headers=headers).status_code for _ in range(2)]
        third = http.get(ALERTS, headers=headers)
    # THEN it is throttled and told to come back when the oldest call leaves the window
    assert statuses == [200, 200]
    assert_graph_error(third, 429, "TooManyRequests")
    assert 58 <= int(third.headers["Retry-After"]) <= 60


def test_unknown_paths_under_v1_are_bad_requests(http: httpx.Client, auth: dict[str, str]) -> None:
    assert_graph_error(http.get("/v1.0/security/alerts_v3", headers=auth), 400, "BadRequest")
    assert_graph_error(http.get("/nowhere", headers=auth), 404, "NotFound")


# -- the simulator: $filter, $orderby, $top, $skip, nextLink -----------------------------------


def test_filter_compares_dates_with_all_operators(
    sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    times = [NOW - timedelta(minutes=m) for m in (30, 20, 10)]
    for n, moment in enumerate(times):
        sim.add_alert(make_alert(n, moment))
    boundary = graph_timestamp(times[1])
    ids = [make_alert(n, t)["id"] for n, t in enumerate(times)]
    asc = {"$orderby": "lastUpdateDateTime asc"}

    assert list_ids(http, auth, **asc, **{"$filter": f"lastUpdateDateTime ge {boundary}"}) == ids[1:]
    assert list_ids(http, auth, **asc, **{"$filter": f"lastUpdateDateTime gt {boundary}"}) == ids[2:]
    assert list_ids(http, auth, **asc, **{"$filter": f"lastUpdateDateTime le {boundary}"}) == ids[:2]
    assert list_ids(http, auth, **asc, **{"$filter": f"lastUpdateDateTime lt {boundary}"}) == ids[:1]
    created = graph_timestamp(times[1] - timedelta(minutes=2))
    assert list_ids(http, auth, **asc, **{"$filter": f"createdDateTime ge {created}"}) == ids[1:]


def test_filter_eq_on_status_severity_and_service_source_combines_with_and(
    sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.add_alert(make_alert(0, NOW - timedelta(minutes=3), status="new", severity="low"))
    sim.add_alert(make_alert(1, NOW - timedelta(minutes=2), status="resolved", severity="high"))
    sim.add_alert(
        make_alert(2, NOW - timedelta(minutes=1), status="new", serviceSource="microsoftDefenderForIdentity")
    )
    first, second, third = (make_alert(n, NOW)["id"] for n in range(3))

    assert list_ids(http, auth, **{"$filter": "status eq 'resolved'"}) == [second]
    assert list_ids(http, auth, **{"$filter": "severity eq 'high' and status eq 'resolved'"}) == [second]
    assert list_ids(http, auth, **{"$filter": "serviceSource eq 'microsoftDefenderForIdentity'"}) == [third]
    since = graph_timestamp(NOW - timedelta(minutes=3))
    both = f"lastUpdateDateTime gt {since} and status eq 'new'"
    assert list_ids(http, auth, **{"$filter": both}) == [third]
    assert first not in list_ids(http, auth, **{"$filter": "status ne 'new'"})


@pytest.mark.parametrize(
    "expression",
    [
        "title eq 'x'",
        "status eq 'closed'",
        "status ge 'new'",
        "severity eq high",
        "lastUpdateDateTime ge '2025-06-17T10:00:00Z'",
        "lastUpdateDateTime ge yesterday",
        "lastUpdateDateTime ge 2025-06-17T10:00:00Z or status eq 'new'",
        "lastUpdateDateTime ge 2025-06-17T10:00:00Z and",
        "",
    ],
)
def test_unsupported_filters_are_bad_requests(
    http: httpx.Client, auth: dict[str, str], expression: str
) -> None:
    assert_graph_error(http.get(ALERTS, params={"$filter": expression}, headers=auth), 400, "BadRequest")


def test_orderby_sorts_both_ways_and_the_default_is_newest_first(
    sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    # GIVEN alerts added out of order
    for n, minutes in enumerate((20, 40, 10, 30)):
        sim.add_alert(make_alert(n, NOW - timedelta(minutes=minutes)))
    by_age = [make_alert(n, NOW)["id"] for n in (1, 3, 0, 2)]  # oldest update first

    assert list_ids(http, auth, **{"$orderby": "lastUpdateDateTime asc"}) == by_age
    assert list_ids(http, auth, **{"$orderby": "lastUpdateDateTime"}) == by_age
    assert list_ids(http, auth, **{"$orderby": "lastUpdateDateTime desc"}) == by_age[::-1]
    assert list_ids(http, auth, **{"$orderby": "createdDateTime asc"}) == by_age
    assert list_ids(http, auth) == by_age[::-1]
    assert_graph_error(http.get(ALERTS, params={"$orderby": "severity"}, headers=auth), 400, "BadRequest")


def test_top_is_clamped_at_1000_and_next_link_carries_the_rest(
    sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    # GIVEN more alerts than one page can hold
    for n in range(1003):
        sim.add_alert(small_alert(n, NOW - timedelta(seconds=2000 - n)))
    # WHEN a caller asks for 5000 at once
    first = http.get(ALERTS, params={"$top": 5000, "$count": "true"}, headers=auth).json()
    # THEN it gets 1000, the total, and a link to the next 1000
    assert len(first["value"]) == 1000
    assert first["@odata.count"] == 1003
    link = httpx.URL(first["@odata.nextLink"])
    assert (link.params["$top"], link.params["$skip"]) == ("1000", "1000")
    second = http.get(str(link), headers=auth).json()
    assert len(second["value"]) == 3
    assert "@odata.nextLink" not in second
    assert len({row["id"] for row in first["value"] + second["value"]}) == 1003


@pytest.mark.parametrize(
    "params",
    [
        {"$top": 1000, "$skip": 5001},
        {"$top": 1, "$skip": 6000},
        {"$top": 0},
        {"$top": "ten"},
        {"$select": "id"},
    ],
)
def test_paging_beyond_graphs_limits_is_a_bad_request(
    http: httpx.Client, auth: dict[str, str], params: dict[str, Any]
) -> None:
    assert_graph_error(http.get(ALERTS, params=params, headers=auth), 400, "BadRequest")


def test_newer_enum_members_need_the_prefer_header(
    sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    # GIVEN an alert from a service added after unknownFutureValue
    sim.add_alert(make_alert(0, NOW, serviceSource="microsoftDefenderForCloud"))
    # WHEN it is read with and without the opt-in
    plain = http.get(ALERTS, headers=auth)
    opted = http.get(ALERTS, headers={**auth, "Prefer": "include-unknown-enum-members"})
    # THEN only the opted-in caller sees the real member
    assert plain.json()["value"][0]["serviceSource"] == "unknownFutureValue"
    assert opted.json()["value"][0]["serviceSource"] == "microsoftDefenderForCloud"
    assert opted.headers["Preference-Applied"] == "include-unknown-enum-members"


def test_single_alert_by_id(sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    alert = make_alert(0, NOW)
    sim.add_alert(alert)

    found = http.get(f"{ALERTS}/{alert['id']}", headers=auth)

    assert found.status_code == 200
    assert found.json()["evidence"] == alert["evidence"]
    assert_graph_error(http.get(f"{ALERTS}/da0_1", headers=auth), 404, "NotFound")
    assert sim.requests[f"GET {ALERTS}/{{id}}"] == 2


def test_alerts_appear_at_visible_at_and_updates_bump_last_update(
    sim: GraphSimulator, clock: Clock, http: httpx.Client, auth: dict[str, str]
) -> None:
    # GIVEN an alert visible five minutes from now
    alert = make_alert(0, NOW - timedelta(minutes=1))
    sim.add_alert(alert, visible_at=NOW + timedelta(minutes=5))
    assert list_ids(http, auth) == []
    clock.now = NOW + timedelta(minutes=5)
    assert list_ids(http, auth) == [alert["id"]]
    # WHEN an analyst resolves it later
    at = clock.now + timedelta(minutes=1, microseconds=5)
    sim.update_alert(alert["id"], at, status="resolved", classification="falsePositive")
    assert http.get(ALERTS, headers=auth).json()["value"][0]["status"] == "inProgress"
    clock.now = at
    [row] = http.get(ALERTS, headers=auth).json()["value"]
    # THEN the new version carries the update time and a resolution time
    assert (row["status"], row["classification"]) == ("resolved", "falsePositive")
    assert row["lastUpdateDateTime"] == row["resolvedDateTime"] == graph_timestamp(at)
    assert row["lastUpdateDateTime"] == "2025-06-17T12:06:00.000005Z"  # Graph trims trailing zeros


def test_a_raw_record_is_listed_under_its_sort_time(
    sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.add_alert(make_alert(0, NOW - timedelta(minutes=10)))
    sim.add_alert(make_alert(1, NOW - timedelta(minutes=5)))
    sim.add_raw({"id": "broken", "lastUpdateDateTime": "garbage"}, NOW, sort_time=NOW - timedelta(minutes=7))
    sim.add_raw("not even an object", NOW + timedelta(hours=1), sort_time=NOW)
    since = graph_timestamp(NOW - timedelta(minutes=8))

    rows = http.get(
        ALERTS,
        params={"$filter": f"lastUpdateDateTime ge {since}", "$orderby": "lastUpdateDateTime asc"},
        headers=auth,
    ).json()["value"]

    assert rows[0] == {"id": "broken", "lastUpdateDateTime": "garbage"}
    assert [row["id"] for row in rows] == ["broken", make_alert(1, NOW)["id"]]


# -- the simulator: base fault knobs -----------------------------------------------------------


def test_latency_delays_every_call(sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    sim.faults.latency_seconds = 0.2

    started = time.monotonic()
    http.get(ALERTS, headers=auth)

    assert time.monotonic() - started >= 0.2


def test_duplicate_and_shuffled_pages(sim: GraphSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    for n in range(8):
        sim.add_alert(small_alert(n, NOW - timedelta(minutes=10 - n)))
    sim.faults.duplicate_page_probability = 1.0
    sim.faults.shuffle_pages = True
    asc: dict[str, str | int] = {"$orderby": "lastUpdateDateTime asc", "$top": 4}

    first = list_ids(http, auth, **asc)
    second = list_ids(http, auth, **asc, **{"$skip": 4})

    expected = [small_alert(n, NOW)["id"] for n in range(8)]
    assert sorted(first) == expected[:4]
    # The second page repeats the tail of the first, and the order is no longer ascending.
    assert set(second) == set(expected[4:]) | {expected[3]}
    assert len(second) == 5


# -- the connector: client + feed + poller over HTTP -------------------------------------------


def test_next_links_are_followed_to_the_last_page(sim: GraphSimulator) -> None:
    # GIVEN 25 alerts and pages of 10
    for n in range(25):
        sim.add_alert(small_alert(n, NOW - timedelta(minutes=30 - n)))
    client = client_for(sim, page_size=10)
    # WHEN the client reads everything updated in the last hour
    pages = list(client.alerts_updated(NOW - timedelta(hours=1)))
    # THEN it took three pages through nextLink, each a real request
    assert [len(page) for page in pages] == [10, 10, 5]
    assert len({row["id"] for page in pages for row in page}) == 25
    assert sim.requests[f"GET {ALERTS}"] == 3 == client.requests_made


def test_filter_and_ascending_order(sim: GraphSimulator) -> None:
    # GIVEN alerts added in random order, some older than the poll window
    order = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4]
    for n in order:
        sim.add_alert(small_alert(n, NOW - timedelta(minutes=20 - n)))
    since = NOW - timedelta(minutes=16, seconds=30)  # after alerts 0..3
    # WHEN the client reads from `since`
    pages = list(client_for(sim, page_size=4).alerts_updated(since))
    # THEN only newer alerts came, oldest first across pages
    times = [cursor_of(row) for page in pages for row in page]
    assert times == sorted(times)
    assert all(t >= since for t in times)
    assert [row["id"] for page in pages for row in page] == [small_alert(n, NOW)["id"] for n in range(4, 10)]


def test_more_than_6000_alerts_are_read_without_skipping_past_5000(sim: GraphSimulator) -> None:
    # GIVEN 6,500 alerts (more than $top + $skip may ever reach) and pages of 1000
    total = 6500
    for n in range(total):
        sim.add_alert(small_alert(n, NOW - timedelta(seconds=total - n)))
    client = client_for(sim)
    # WHEN everything is read
    pages = list(client.alerts_updated(NOW - timedelta(hours=3)))
    # THEN every alert arrived in ascending order; the read restarted once from the newest time
    # seen instead of asking for $skip 6000 (which Graph refuses)
    rows = [row for page in pages for row in page]
    assert {row["id"] for row in rows} == {small_alert(n, NOW)["id"] for n in range(total)}
    times = [cursor_of(row) for row in rows]
    assert times == sorted(times)
    assert client.restarts == 1
    assert len(rows) == total + 1  # the restart re-reads the row at its own start time
    assert [len(page) for page in pages] == [1000] * 6 + [501]
    assert sim.requests[f"GET {ALERTS}"] == 7


def test_tokens_expiring_mid_pagination_are_refreshed(sim: GraphSimulator) -> None:
    # GIVEN 30 alerts and tokens that die after two API calls
    for n in range(30):
        sim.add_alert(small_alert(n, NOW - timedelta(minutes=40 - n)))
    sim.faults.expire_tokens_after(2)
    client = client_for(sim, page_size=10)
    # WHEN the client pages through them
    pages = list(client.alerts_updated(NOW - timedelta(hours=1)))
    # THEN the third page got a 401, a fresh token, and the read went on
    assert len({row["id"] for page in pages for row in page}) == 30
    assert sim.requests["POST /token"] == 2
    assert sim.requests[f"GET {ALERTS}"] == 4


def test_429_retry_after_is_honoured(sim: GraphSimulator) -> None:
    # GIVEN Graph throttles the next call for one second
    sim.add_alert(small_alert(0, NOW - timedelta(minutes=1)))
    sim.throttle_next(1, retry_after_seconds=1)
    client = client_for(sim)
    # WHEN the client reads
    started = time.monotonic()
    pages = list(client.alerts_updated(NOW - timedelta(hours=1)))
    waited = time.monotonic() - started
    # THEN it waited the second Graph asked for (not its own short backoff) and got the page
    assert 1.0 <= waited < 3.0
    assert len(pages[0]) == 1
    assert sim.requests[f"GET {ALERTS}"] == 2


def test_5xx_is_retried_with_backoff(sim: GraphSimulator) -> None:
    sim.add_alert(small_alert(0, NOW - timedelta(minutes=1)))
    sim.fail_next(2, status=503)
    client = client_for(sim, policy=RetryPolicy(attempts=4, base_delay=0.01))

    pages = list(client.alerts_updated(NOW - timedelta(hours=1)))

    assert len(pages[0]) == 1
    assert sim.requests[f"GET {ALERTS}"] == 3


# -- the poller on the Graph feed ---------------------------------------------------------------


class MemorySink:
    def __init__(self) -> None:
        self.events: dict[str, Event] = {}

    def store_page(self, events: Sequence[Event]) -> list[WriteOutcome]:
        return [self.store(event) for event in events]

    def store(self, event: Event) -> WriteOutcome:
        previous = self.events.get(event.uid)
        self.events[event.uid] = event
        if previous is None:
            return WriteOutcome.CREATED
        if previous.content_hash() == event.content_hash():
            return WriteOutcome.UNCHANGED
        return WriteOutcome.UPDATED


class HintResolver:
    def resolve(self, hints: DeviceHints, seen_at: datetime) -> str:
        return f"{hints.source}:{hints.device_id or hints.hostname}"


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.saved: list[datetime] = []

    def load(self, source: str) -> datetime | None:
        return self.saved[-1] if self.saved else None

    def save(self, source: str, cursor: datetime) -> None:
        self.saved.append(cursor)


class MemoryQuarantine:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, Any]] = []

    def put(self, source: str, reason: str, raw: Any) -> bool:
        if (source, reason, raw) in self.items:
            return False
        self.items.append((source, reason, raw))
        return True


def test_poller_quarantines_a_malformed_record_and_picks_up_an_update(
    sim: GraphSimulator, clock: Clock
) -> None:
    # GIVEN three full alerts and, between them, a record without an id
    for n in range(3):
        sim.add_alert(make_alert(n, NOW - timedelta(minutes=30 - n)))
    broken = {
        "title": "no id",
        "lastUpdateDateTime": graph_timestamp(NOW - timedelta(minutes=29, seconds=30)),
    }
    sim.add_raw(
        broken, visible_at=NOW - timedelta(hours=1), sort_time=NOW - timedelta(minutes=29, seconds=30)
    )
    feed = GraphFeed(client_for(sim, page_size=2))
    sink, checkpoints, quarantine = MemorySink(), MemoryCheckpoints(), MemoryQuarantine()
    settings = PollSettings(lookback=timedelta(hours=1), overlap=timedelta(minutes=1))

    # WHEN the poller runs
    first = poll(feed, sink, HintResolver(), checkpoints, quarantine, now=NOW, settings=settings)

    # THEN the alerts are stored on the MDE device entity, the bad record is quarantined, and the
    # checkpoint moved per page to the newest update seen
    assert Counter({k: v for k, v in first.outcomes.items() if v}) == Counter(created=3, quarantined=1)
    assert [(source, raw) for source, _, raw in quarantine.items] == [("graph", broken)]
    assert {e.entity_id for e in sink.events.values()} == {"mde:9c2e4a6b8d0f1e3c5a7b9d1f3e5c7a9b1d3f5e7c"}
    assert checkpoints.saved == sorted(checkpoints.saved)
    assert checkpoints.saved[-1] == cursor_of(make_alert(2, NOW - timedelta(minutes=28)))

    # GIVEN the analyst resolves the oldest alert in the portal afterwards
    alert_id = make_alert(0, NOW)["id"]
    clock.now = NOW + timedelta(minutes=10)
    sim.update_alert(
        alert_id, clock.now - timedelta(minutes=1), status="resolved", classification="truePositive"
    )
    # WHEN the next poll runs from the checkpoint
    second = poll(feed, sink, HintResolver(), checkpoints, quarantine, now=clock.now, settings=settings)
    # THEN the alert came back with its newer lastUpdateDateTime and updated the stored event
    assert second.outcomes["updated"] == 1
    assert second.outcomes["created"] == 0
    event = sink.events[f"graph:{alert_id}"]
    assert event.status == "resolved"
    assert event.updated_at == clock.now - timedelta(minutes=1)
    assert checkpoints.saved[-1] == event.updated_at
