"""The SentinelOne connector against its simulator over real HTTP: auth, cursor paging, filters,
throttling, retries, malformed records, threat updates, and disconnect."""

from __future__ import annotations

import base64
import ssl
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from needle.ingest.poller import poll
from needle.ingest.ports import WriteOutcome
from needle.model.event import DeviceHints, Event, MalformedRecordError
from needle.sources.http import RetryPolicy, VendorApiError
from needle.sources.sentinelone.client import SentinelOneClient, StaticApiToken
from needle.sources.sentinelone.feed import SentinelOneFeed
from needle.sources.sentinelone.normalize import normalize
from needle_local.simulators.sentinelone import SentinelOneSimulator, s1_time

pytestmark = pytest.mark.integration

START = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)
TOKEN = "s1-sim-token-4c2e9a71"
CONSOLE = "https://usea1-northwind.sentinelone.net"
THREATS = "/web/api/v2.1/threats"
AUTH_FAILED = {"errors": [{"code": 4010010, "detail": None, "title": "Authentication Failed"}]}
# Plain HTTP never uses it, but httpx builds one per client unless given one: build it once.
TLS = ssl.create_default_context()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_threat(
    threat_id: str,
    updated: datetime,
    *,
    agent: str = "2241190034487712208",
    host: str = "NW-LT-0193",
    ip: str = "10.44.18.73",
    classification: str = "Malware",
) -> dict[str, Any]:
    return {
        "id": threat_id,
        "agentDetectionInfo": {"agentIpV4": ip, "agentIpV6": None, "externalIp": "198.51.100.23"},
        "agentRealtimeInfo": {
            "agentId": agent,
            "agentUuid": f"uuid-{agent}",
            "agentComputerName": host,
            "agentOsType": "windows",
            "agentNetworkStatus": "connected",
            "agentDecommissionedAt": None,
            "networkInterfaces": [
                {"name": "Ethernet", "inet": [ip], "inet6": [], "physical": "00-15-5D-0A-1B-2C"}
            ],
        },
        "indicators": [
            {
                "category": "Execution",
                "description": "Suspicious PowerShell",
                "tactics": [{"name": "Execution", "techniques": [{"name": "T1059.001"}]}],
            }
        ],
        "mitigationStatus": [],
        "threatInfo": {
            "threatId": threat_id,
            "threatName": f"dropper-{threat_id[-4:]}.exe",
            "classification": classification,
            "confidenceLevel": "malicious",
            "analystVerdict": "undefined",
            "incidentStatus": "unresolved",
            "mitigationStatus": "not_mitigated",
            "createdAt": s1_time(updated - timedelta(seconds=2)),
            "identifiedAt": s1_time(updated - timedelta(seconds=5)),
            "updatedAt": s1_time(updated),
            "filePath": f"C:\\Users\\amoreau\\Downloads\\dropper-{threat_id[-4:]}.exe",
            "sha1": "7d1e9f2a4c6b8d0e1f3a5c7e9b1d3f5a7c9e1b3d",
            "sha256": None,
            "originatorProcess": "explorer.exe",
            "maliciousProcessArguments": None,
            "processUser": "NORTHWIND\\amoreau",
        },
    }


def tid(n: int) -> str:
    return f"22419{n:014d}"


@pytest.fixture
def clock() -> Clock:
    return Clock(START + timedelta(days=1))


@pytest.fixture
def sim(clock: Clock) -> Iterator[SentinelOneSimulator]:
    with SentinelOneSimulator(clock=clock, api_token=TOKEN) as simulator:
        yield simulator


@pytest.fixture
def http(sim: SentinelOneSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=5, verify=TLS) as client:
        yield client


@pytest.fixture
def client(sim: SentinelOneSimulator, http: httpx.Client) -> SentinelOneClient:
    return connector(sim, http, TOKEN)


def connector(
    sim: SentinelOneSimulator, http: httpx.Client, token: str, page_size: int = 1000
) -> SentinelOneClient:
    # Short backoff for 5xx, but the default cap: the wait a 429 asks for must not be clipped.
    policy = RetryPolicy(attempts=4, base_delay=0.01)
    return SentinelOneClient(http, sim.base_url, StaticApiToken(token), page_size=page_size, policy=policy)


AUTH = {"Authorization": f"ApiToken {TOKEN}"}


def listing(http: httpx.Client, headers: dict[str, str] = AUTH, **params: str | int) -> httpx.Response:
    return http.get(THREATS, params=params, headers=headers)


def ids_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


# -- authentication ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": "ApiToken wrong"},
        {"Authorization": "ApiToken"},
    ],
    ids=["missing", "bearer-scheme", "wrong-token", "empty-token"],
)
def test_calls_without_the_api_token_get_sentinelone_401(http: httpx.Client, headers: dict[str, str]) -> None:
    response = listing(http, headers)

    assert response.status_code == 401
    assert response.json() == AUTH_FAILED


def test_a_wrong_token_is_a_clear_vendor_error_without_the_token(
    sim: SentinelOneSimulator, http: httpx.Client
) -> None:
    # GIVEN a client holding a token the console does not know
    wrong = "s1-wrong-token-0f9e8d7c"
    client = connector(sim, http, wrong)
    # WHEN it polls
    with pytest.raises(VendorApiError) as caught:
        list(client.threats_updated(START))
    # THEN one request was refused, the error is a 401 that names the token problem, not the token
    assert caught.value.status == 401
    assert "API token" in str(caught.value)
    assert wrong not in str(caught.value)
    assert sim.requests[f"GET {THREATS}"] == 1


def test_expire_tokens_rotates_the_valid_token(sim: SentinelOneSimulator, http: httpx.Client) -> None:
    assert listing(http).status_code == 200

    sim.expire_tokens()

    assert listing(http).status_code == 401
    rotated = {"Authorization": f"ApiToken {sim.api_token}"}
    assert sim.api_token != TOKEN
    assert listing(http, rotated).status_code == 200
    sim.set_token(TOKEN)
    assert listing(http).status_code == 200


def test_a_token_expiring_mid_pagination_stops_the_poll(
    sim: SentinelOneSimulator, client: SentinelOneClient, http: httpx.Client
) -> None:
    for n in range(5):
        sim.add_alert(make_threat(tid(n), START + timedelta(minutes=n)))
    sim.faults.expire_tokens_after(1)
    pages = connector(sim, http, TOKEN, page_size=2).threats_updated(START)

    assert len(next(pages)) == 2
    with pytest.raises(VendorApiError) as caught:
        next(pages)
    assert caught.value.status == 401


# -- listing: cursor paging, filters, order ------------------------------------------------------


def test_cursor_paging_reads_2500_threats_to_the_last_page(
    sim: SentinelOneSimulator, client: SentinelOneClient
) -> None:
    # GIVEN 2,500 threats, added newest first
    for n in reversed(range(2500)):
        sim.add_alert(make_threat(tid(n), START + timedelta(seconds=n)))
    # WHEN the client reads everything updated since the start with limit 1000
    pages = list(client.threats_updated(START))
    # THEN three pages came back (1000, 1000, 500) holding every threat once, oldest update first
    assert [len(p) for p in pages] == [1000, 1000, 500]
    ids = [t["id"] for p in pages for t in p]
    assert ids == [tid(n) for n in range(2500)]
    assert sim.requests[f"GET {THREATS}"] == 3


def test_pagination_envelope_and_last_page_cursor(sim: SentinelOneSimulator, http: httpx.Client) -> None:
    for n in range(3):
        sim.add_alert(make_threat(tid(n), START + timedelta(minutes=n)))

    first = listing(http, limit=2, sortBy="updatedAt", sortOrder="asc").json()
    cursor = first["pagination"]["nextCursor"]
    last = listing(http, limit=2, sortBy="updatedAt", sortOrder="asc", cursor=cursor).json()

    assert first["pagination"]["totalItems"] == 3
    assert base64.b64decode(cursor, validate=True)  # opaque, but base64 like the real one
    assert [t["id"] for t in last["data"]] == [tid(2)]
    assert last["pagination"] == {"nextCursor": None, "totalItems": 3}


def test_updated_at_gte_filters_and_sorts_ascending(
    sim: SentinelOneSimulator, client: SentinelOneClient
) -> None:
    # GIVEN threats updated at minutes 30, 10, 50, 20 and 40 (added in that order)
    for minute in (30, 10, 50, 20, 40):
        sim.add_alert(make_threat(tid(minute), START + timedelta(minutes=minute)))
    # WHEN the client reads from minute 20 exactly
    [page] = list(client.threats_updated(START + timedelta(minutes=20)))
    # THEN the boundary is inclusive and the rows are in ascending update order
    assert [t["id"] for t in page] == [tid(20), tid(30), tid(40), tid(50)]
    updated = [t["threatInfo"]["updatedAt"] for t in page]
    assert updated == sorted(updated)


def test_time_filters_compare_at_microsecond_precision(sim: SentinelOneSimulator, http: httpx.Client) -> None:
    moment = START + timedelta(microseconds=270581)
    sim.add_alert(make_threat(tid(1), moment))

    assert ids_of(listing(http, updatedAt__gte=s1_time(moment))) == [tid(1)]
    assert ids_of(listing(http, updatedAt__gt=s1_time(moment))) == []
    assert ids_of(listing(http, updatedAt__lte=s1_time(moment))) == [tid(1)]
    assert ids_of(listing(http, updatedAt__lt=s1_time(moment))) == []
    assert ids_of(listing(http, createdAt__lt=s1_time(moment))) == [tid(1)]
    assert ids_of(listing(http, createdAt__gte=s1_time(moment))) == []


def test_cursor_survives_inserts_with_later_update_times(
    sim: SentinelOneSimulator, http: httpx.Client
) -> None:
    # GIVEN four threats read two at a time
    for n in range(4):
        sim.add_alert(make_threat(tid(n), START + timedelta(minutes=n)))
    query: dict[str, str | int] = {
        "limit": 2,
        "sortBy": "updatedAt",
        "sortOrder": "asc",
        "updatedAt__gte": s1_time(START),
    }
    first = http.get(THREATS, params=query, headers=AUTH).json()
    # WHEN new threats with later update times arrive between pages
    sim.add_alert(make_threat(tid(90), START + timedelta(minutes=90)))
    sim.add_alert(make_threat(tid(91), START + timedelta(minutes=91)))
    rest: list[str] = []
    cursor = first["pagination"]["nextCursor"]
    while cursor:
        body = http.get(THREATS, params={**query, "cursor": cursor}, headers=AUTH).json()
        rest += [t["id"] for t in body["data"]]
        cursor = body["pagination"]["nextCursor"]
    # THEN the cursor still resumes after the last row served, and the newcomers come last
    assert [t["id"] for t in first["data"]] == [tid(0), tid(1)]
    assert rest == [tid(2), tid(3), tid(90), tid(91)]


def test_sort_descending_by_created_at_with_a_cursor(sim: SentinelOneSimulator, http: httpx.Client) -> None:
    for n in range(5):
        sim.add_alert(make_threat(tid(n), START + timedelta(minutes=n)))

    first = listing(http, limit=3, sortBy="createdAt", sortOrder="desc").json()
    cursor = first["pagination"]["nextCursor"]
    second = listing(http, limit=3, cursor=cursor).json()  # the cursor carries its sort

    assert [t["id"] for t in first["data"]] == [tid(4), tid(3), tid(2)]
    assert [t["id"] for t in second["data"]] == [tid(1), tid(0)]
    assert listing(http, limit=3, sortBy="updatedAt", cursor=cursor).status_code == 400


def test_ids_count_only_skip_count_and_skip(sim: SentinelOneSimulator, http: httpx.Client) -> None:
    for n in range(5):
        sim.add_alert(
            make_threat(tid(n), START + timedelta(minutes=n), classification="PUA" if n % 2 else "Malware")
        )

    assert ids_of(listing(http, ids=f"{tid(3)},{tid(1)}", sortBy="id")) == [tid(1), tid(3)]
    assert ids_of(listing(http, classifications="PUA", sortBy="id")) == [tid(1), tid(3)]
    assert ids_of(listing(http, classificationsNin="PUA", sortBy="id")) == [tid(0), tid(2), tid(4)]
    assert listing(http, countOnly="true").json() == {
        "data": [],
        "pagination": {"nextCursor": None, "totalItems": 5},
    }
    assert listing(http, skipCount="true").json()["pagination"]["totalItems"] is None
    assert ids_of(listing(http, skip=3, sortBy="id")) == [tid(3), tid(4)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"skip": 1001}, "skip"),
        ({"cursor": "not base64!"}, "cursor"),
        ({"sortBy": "severity"}, "sortBy"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"updatedAt__gte": "yesterday"}, "updatedAt__gte"),
        ({"countOnly": "maybe"}, "countOnly"),
        ({"updatedSince": "2025-06-03T08:00:00Z"}, "updatedSince"),
    ],
)
def test_invalid_input_is_a_400_validation_error(
    http: httpx.Client, params: dict[str, Any], field: str
) -> None:
    response = listing(http, **params)

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["code"] == 4000010
    assert error["title"] == "Validation Error"
    assert field in error["detail"]


def test_threats_appear_only_once_visible(
    sim: SentinelOneSimulator, clock: Clock, http: httpx.Client
) -> None:
    sim.add_alert(make_threat(tid(1), START), visible_at=clock.now + timedelta(minutes=5))

    assert ids_of(listing(http)) == []
    clock.now += timedelta(minutes=5)
    assert ids_of(listing(http)) == [tid(1)]


# -- throttling and failures -----------------------------------------------------------------------


def test_429_retry_after_is_honoured(sim: SentinelOneSimulator, client: SentinelOneClient) -> None:
    # GIVEN one threat and a throttled next call asking for a 1 s wait
    sim.add_alert(make_threat(tid(1), START))
    sim.throttle_next(1, retry_after_seconds=1)
    # WHEN the client polls
    started = time.monotonic()
    pages = list(client.threats_updated(START))
    waited = time.monotonic() - started
    # THEN it waited the second the vendor asked for (not its own millisecond backoff), then read
    assert [len(p) for p in pages] == [1]
    assert 0.95 <= waited < 3.0
    assert sim.requests[f"GET {THREATS}"] == 2


def test_throttled_reply_is_sentinelone_shaped(sim: SentinelOneSimulator, http: httpx.Client) -> None:
    sim.throttle_next(1, retry_after_seconds=1)

    response = listing(http)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json()["errors"][0]["code"] == 4290010


def test_the_threats_rate_limit_answers_429_with_retry_after(clock: Clock) -> None:
    with (
        SentinelOneSimulator(clock=clock, api_token=TOKEN, rate_limit=(1.0, 2)) as sim,
        httpx.Client(base_url=sim.base_url, timeout=5, verify=TLS) as http,
    ):
        statuses = [listing(http).status_code for _ in range(3)]
        throttled = listing(http)

    assert statuses == [200, 200, 429]
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1


def test_5xx_is_retried(sim: SentinelOneSimulator, client: SentinelOneClient) -> None:
    sim.add_alert(make_threat(tid(1), START))
    sim.fail_next(2, status=503)

    pages = list(client.threats_updated(START))

    assert [len(p) for p in pages] == [1]
    assert sim.requests[f"GET {THREATS}"] == 3


def test_5xx_reply_is_sentinelone_shaped(sim: SentinelOneSimulator, http: httpx.Client) -> None:
    sim.fail_next(1, status=500)

    response = listing(http)

    assert response.status_code == 500
    assert response.json() == {
        "errors": [{"code": 5000010, "detail": None, "title": "Internal Server Error"}]
    }


# -- records: malformed, updated -------------------------------------------------------------------


def test_a_malformed_record_in_a_page_is_served_and_refused_by_the_normalizer(
    sim: SentinelOneSimulator, client: SentinelOneClient
) -> None:
    # GIVEN a page holding two good threats around a record with a broken update time
    sim.add_alert(make_threat(tid(1), START + timedelta(minutes=1)))
    broken = {"id": tid(2), "threatInfo": {"updatedAt": "2025-06-03T08:02:00 (UTC)"}}
    sim.add_raw(broken, visible_at=START, sort_time=START + timedelta(minutes=2))
    sim.add_alert(make_threat(tid(3), START + timedelta(minutes=3)))
    # WHEN the page is read and normalized
    [page] = list(client.threats_updated(START))
    # THEN the broken record arrives in its place and only it is malformed
    assert [t["id"] for t in page] == [tid(1), tid(2), tid(3)]
    assert normalize(page[0], CONSOLE).vendor_id == tid(1)
    with pytest.raises(MalformedRecordError):
        normalize(page[1], CONSOLE)
    assert normalize(page[2], CONSOLE).vendor_id == tid(3)


def test_an_updated_threat_is_served_again_with_a_newer_updated_at(
    sim: SentinelOneSimulator, clock: Clock, client: SentinelOneClient
) -> None:
    # GIVEN a threat already read once
    sim.add_alert(make_threat(tid(1), START))
    [[first]] = list(client.threats_updated(START))
    cursor = normalize(first, CONSOLE).updated_at
    # WHEN the analyst resolves it in the console later
    resolved_at = START + timedelta(hours=1)
    sim.update_alert(tid(1), resolved_at, incidentStatus="resolved", analystVerdict="true_positive")
    # THEN a read from the old cursor serves it again, newer, with the new state
    [[again]] = list(client.threats_updated(cursor))
    event = normalize(again, CONSOLE)
    assert event.vendor_id == tid(1)
    assert event.updated_at == resolved_at > cursor
    assert event.status == "resolved"
    assert event.finding["verdict"] == "True Positive"
    assert list(client.threats_updated(resolved_at + timedelta(microseconds=1))) == [[]]


def test_an_update_not_yet_visible_keeps_the_previous_version(
    sim: SentinelOneSimulator, clock: Clock, http: httpx.Client
) -> None:
    sim.add_alert(make_threat(tid(1), START))
    later = clock.now + timedelta(minutes=10)
    sim.update_alert(tid(1), later, incidentStatus="in_progress")

    [row] = listing(http).json()["data"]
    assert row["threatInfo"]["incidentStatus"] == "unresolved"
    clock.now = later
    [row] = listing(http).json()["data"]
    assert row["threatInfo"]["incidentStatus"] == "in_progress"
    assert row["threatInfo"]["updatedAt"] == s1_time(later)


def test_page_faults_duplicate_and_shuffle_rows(sim: SentinelOneSimulator, http: httpx.Client) -> None:
    for n in range(8):
        sim.add_alert(make_threat(tid(n), START + timedelta(minutes=n)))
    sim.faults.duplicate_page_probability = 1.0

    first = listing(http, limit=4, sortBy="updatedAt").json()
    second = listing(http, limit=4, cursor=first["pagination"]["nextCursor"]).json()

    assert [t["id"] for t in first["data"]] == [tid(n) for n in range(4)]
    assert [t["id"] for t in second["data"]] == [tid(3)] + [tid(n) for n in range(4, 8)]


# -- the poller over the feed --------------------------------------------------------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.checkpoints: dict[str, datetime] = {}
        self.quarantined: list[tuple[str, str]] = []

    def store_page(self, events: Sequence[Event]) -> list[WriteOutcome]:
        return [self.store(event) for event in events]

    def store(self, event: Event) -> WriteOutcome:
        previous = self.events.get(event.uid)
        self.events[event.uid] = event
        if previous is None:
            return WriteOutcome.CREATED
        return WriteOutcome.UPDATED if previous.updated_at != event.updated_at else WriteOutcome.UNCHANGED

    def resolve(self, hints: DeviceHints, seen_at: datetime) -> str:
        return f"host:{(hints.hostname or hints.device_id or '').lower()}"

    def load(self, source: str) -> datetime | None:
        return self.checkpoints.get(source)

    def save(self, source: str, cursor: datetime) -> None:
        self.checkpoints[source] = cursor

    def put(self, source: str, reason: str, raw: Any) -> bool:
        if (source, reason) in self.quarantined:
            return False
        self.quarantined.append((source, reason))
        return True


def test_the_poller_checkpoints_per_page_and_quarantines_the_malformed(
    sim: SentinelOneSimulator, clock: Clock, http: httpx.Client
) -> None:
    # GIVEN five threats and one malformed record, read two per page
    for n in range(5):
        sim.add_alert(make_threat(tid(n), START + timedelta(minutes=n)))
    sim.add_raw(
        {"id": tid(9), "threatInfo": {"updatedAt": "never"}}, START, START + timedelta(minutes=2, seconds=30)
    )
    feed = SentinelOneFeed(connector(sim, http, TOKEN, page_size=2), CONSOLE)
    store = MemoryStore()
    # WHEN the poller runs over the feed
    report = poll(feed, store, store, store, store, now=clock.now)
    # THEN every good threat is stored, the bad one quarantined, the checkpoint is the newest update
    assert sorted(store.events) == [f"sentinelone:{tid(n)}" for n in range(5)]
    assert [source for source, _ in store.quarantined] == ["sentinelone"]
    assert store.checkpoints["sentinelone"] == START + timedelta(minutes=4)
    assert report.outcomes == Counter(created=5, quarantined=1)
    assert report.pages == 3


# -- containment --------------------------------------------------------------------------------------


def test_disconnect_isolates_the_agent_on_its_threats(
    sim: SentinelOneSimulator, client: SentinelOneClient, http: httpx.Client
) -> None:
    # GIVEN threats on two agents
    sim.add_alert(make_threat(tid(1), START, agent="2241190034487712208", host="NW-LT-0193"))
    sim.add_alert(
        make_threat(tid(2), START + timedelta(minutes=1), agent="2241190034487712299", host="NW-LT-0200")
    )
    # WHEN one agent is disconnected
    affected = client.disconnect(["2241190034487712208", "9999999999999999999"])
    # THEN only that agent's threats show it disconnected, without a new update time
    assert affected == 1
    rows = {t["id"]: t for t in listing(http).json()["data"]}
    assert rows[tid(1)]["agentRealtimeInfo"]["agentNetworkStatus"] == "disconnected"
    assert rows[tid(2)]["agentRealtimeInfo"]["agentNetworkStatus"] == "connected"
    assert rows[tid(1)]["threatInfo"]["updatedAt"] == s1_time(START)
    assert sim.requests["POST /web/api/v2.1/agents/actions/disconnect"] == 1
    # AND connecting it again restores it
    assert client.connect(["2241190034487712208"]) == 1
    rows = {t["id"]: t for t in listing(http).json()["data"]}
    assert rows[tid(1)]["agentRealtimeInfo"]["agentNetworkStatus"] == "connected"
    assert [(action, agent) for action, agent, _ in sim.agent_actions] == [
        ("disconnect", "2241190034487712208"),
        ("connect", "2241190034487712208"),
    ]


def test_disconnect_accepts_comma_separated_ids_and_refuses_bad_bodies(
    sim: SentinelOneSimulator, http: httpx.Client
) -> None:
    sim.add_alert(make_threat(tid(1), START, agent="11"))
    sim.add_alert(make_threat(tid(2), START, agent="22"))
    url = "/web/api/v2.1/agents/actions/disconnect"

    both = http.post(url, json={"filter": {"ids": "11, 22"}, "data": {}}, headers=AUTH)
    no_filter = http.post(url, json={"data": {}}, headers=AUTH)
    unauthenticated = http.post(url, json={"filter": {"ids": ["11"]}, "data": {}})

    assert both.status_code == 200
    assert both.json() == {"data": {"affected": 2}}
    assert no_filter.status_code == 400
    assert no_filter.json()["errors"][0]["title"] == "Validation Error"
    assert unauthenticated.status_code == 401
    assert sim.network_status == {"11": "disconnected", "22": "disconnected"}
