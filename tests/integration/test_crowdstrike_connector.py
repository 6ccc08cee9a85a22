"""The CrowdStrike connector (client, feed, normalizer) against the Falcon simulator over real HTTP."""

from __future__ import annotations

import base64
import json
import random
import ssl
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from needle.ingest.poller import PollSettings, poll
from needle.ingest.ports import WriteOutcome
from needle.model.event import DeviceHints, Event, MalformedRecordError
from needle.sources.crowdstrike.client import CrowdStrikeClient, FalconTokens
from needle.sources.crowdstrike.feed import CrowdStrikeFeed
from needle.sources.crowdstrike.normalize import normalize
from needle.sources.http import RetryPolicy, VendorApiError
from needle_local.simulators.crowdstrike import CrowdStrikeSimulator, cs_timestamp

pytestmark = pytest.mark.integration

START = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
CID = "7d3e2f1a0b9c48d7a6e5f4c3b2a19080"
AID = "c4a1e9f27b3d4e58a0f6b2d9e7c13a54"
QUERY = "GET /alerts/queries/alerts/v2"
ENTITIES = "POST /alerts/entities/alerts/v2"
TOKEN = "POST /oauth2/token"
# Plain HTTP never uses it, but httpx builds one per client unless given one: build it once.
TLS = ssl.create_default_context()


class Clock:
    """The simulated vendor's clock, moved by tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def cs_alert(
    n: int, updated: datetime, *, aid: str = AID, product: str = "epp", **extra: Any
) -> dict[str, Any]:
    composite_id = f"{CID}:ind:{aid}:{88213400000 + n}-10197-{n}"
    return {
        "composite_id": composite_id,
        "id": composite_id.split(":", 1)[1],
        "cid": CID,
        "agent_id": aid,
        "name": "CredentialDumpingLsassComsvcs",
        "display_name": "LSASS memory dumped with comsvcs.dll MiniDump",
        "severity": 70,
        "severity_name": "High",
        "status": "new",
        "product": product,
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
            "device_id": aid,
            "hostname": "FIN-LT-0193",
            "local_ip": "10.42.8.193",
            "external_ip": "198.51.100.23",
            "platform_name": "Windows",
            "os_version": "Windows 11",
            "mac_address": "3c-52-82-1f-9a-07",
            "status": "normal",
        },
        **extra,
    }


def seed(
    sim: CrowdStrikeSimulator, count: int, *, step: timedelta = timedelta(seconds=1)
) -> list[dict[str, Any]]:
    """`count` alerts updated `step` apart from START, added in a shuffled order."""
    data = [cs_alert(n, START + n * step) for n in range(count)]
    for alert in random.Random(3).sample(data, len(data)):
        sim.add_alert(alert)
    return data


@pytest.fixture
def clock() -> Clock:
    return Clock(START + timedelta(hours=3))


@pytest.fixture
def sim(clock: Clock) -> Iterator[CrowdStrikeSimulator]:
    with CrowdStrikeSimulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, verify=TLS, trust_env=False) as client:
        yield client


def connect(
    sim: CrowdStrikeSimulator, http: httpx.Client, *, page_size: int = 500, offset_window: int = 10_000
) -> tuple[CrowdStrikeClient, FalconTokens]:
    tokens = FalconTokens(http, sim.base_url, "sim-client", "sim-secret")
    client = CrowdStrikeClient(
        http,
        sim.base_url,
        tokens,
        page_size=page_size,
        offset_window=offset_window,
        policy=RetryPolicy(attempts=4, base_delay=0.01, max_delay=2.0),
    )
    return client, tokens


def versions(pages: list[list[dict[str, Any]]]) -> list[tuple[str, str]]:
    return [(a["composite_id"], a["updated_timestamp"]) for page in pages for a in page]


def grant(http: httpx.Client, sim: CrowdStrikeSimulator, secret: str = "sim-secret") -> httpx.Response:  # noqa: S107
    return http.post(
        f"{sim.base_url}/oauth2/token", data={"client_id": "sim-client", "client_secret": secret}
    )


@pytest.fixture
def auth(http: httpx.Client, sim: CrowdStrikeSimulator) -> dict[str, str]:
    response = grant(http, sim)
    assert response.status_code == 201
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def assert_envelope(body: dict[str, Any]) -> None:
    assert set(body) == {"meta", "resources", "errors"}
    assert {"query_time", "powered_by", "trace_id"} <= set(body["meta"])


# -- the client over the simulator -----------------------------------------------------------


def test_pagination_reads_every_alert_to_the_last_page_in_ascending_order(
    sim: CrowdStrikeSimulator, http: httpx.Client
) -> None:
    # GIVEN 2,500 alerts, added out of order
    data = seed(sim, 2500)
    client, tokens = connect(sim, http, page_size=500)
    # WHEN everything updated since START is read 500 at a time
    pages = list(client.alerts_updated(START))
    # THEN all arrive once, ascending, over queries overlapping by one id, with one token
    assert [cid for cid, _ in versions(pages)] == [a["composite_id"] for a in data]
    assert [len(p) for p in pages] == [500, 499, 499, 499, 499, 4]
    assert (sim.requests[TOKEN], sim.requests[QUERY], sim.requests[ENTITIES]) == (1, 6, 6)
    assert tokens.region == "us-1"


def test_the_updated_timestamp_filter_is_inclusive_and_hides_what_is_not_visible_yet(
    sim: CrowdStrikeSimulator, http: httpx.Client, clock: Clock
) -> None:
    # GIVEN ten alerts, and one more that the vendor will only show an hour from now
    data = seed(sim, 10)
    late = cs_alert(99, START + timedelta(seconds=30))
    sim.add_alert(late, visible_at=clock.now + timedelta(hours=1))
    client, _ = connect(sim, http)
    # WHEN reading from exactly the update time of alert 4
    pages = list(client.alerts_updated(START + timedelta(seconds=4)))
    # THEN alerts 4..9 arrive (the bound is inclusive) and the late one does not, until it is visible
    assert [cid for cid, _ in versions(pages)] == [a["composite_id"] for a in data[4:]]
    clock.now += timedelta(hours=1)
    assert late["composite_id"] in {cid for cid, _ in versions(list(client.alerts_updated(START)))}


def test_a_token_expiring_mid_pagination_is_refreshed_and_the_listing_completes(
    sim: CrowdStrikeSimulator, http: httpx.Client
) -> None:
    # GIVEN 1,500 alerts and tokens that stop working after three more API calls
    data = seed(sim, 1500)
    client, tokens = connect(sim, http, page_size=300)
    sim.faults.expire_tokens_after(3)
    # WHEN everything is read
    pages = list(client.alerts_updated(START))
    # THEN the 401 in the middle cost one new token and no alert
    assert [cid for cid, _ in versions(pages)] == [a["composite_id"] for a in data]
    assert sim.requests[TOKEN] == 2
    assert tokens.fetched == 2


def test_a_429_waits_until_the_epoch_in_x_ratelimit_retryafter(
    sim: CrowdStrikeSimulator, http: httpx.Client
) -> None:
    # GIVEN a throttled API that names "now + 1 s" as the Unix epoch to retry at
    data = seed(sim, 3)
    client, _ = connect(sim, http)
    sim.throttle_next(1, retry_after_seconds=1)
    # WHEN the listing runs
    started = time.monotonic()
    pages = list(client.alerts_updated(START))
    waited = time.monotonic() - started
    # THEN the client waited for the epoch (about a second), then got everything
    assert waited >= 0.95
    assert waited < 5
    assert [cid for cid, _ in versions(pages)] == [a["composite_id"] for a in data]
    assert sim.requests[QUERY] == 2


def test_5xx_answers_are_retried(sim: CrowdStrikeSimulator, http: httpx.Client) -> None:
    data = seed(sim, 5)
    client, _ = connect(sim, http)
    sim.fail_next(2, status=503)

    pages = list(client.alerts_updated(START))

    assert [cid for cid, _ in versions(pages)] == [a["composite_id"] for a in data]
    assert sim.requests[QUERY] == 3


def test_a_200_with_errors_fails_the_pass_with_the_vendor_code(
    sim: CrowdStrikeSimulator, http: httpx.Client
) -> None:
    seed(sim, 3)
    client, _ = connect(sim, http)
    sim.errors_in_200_next(1)

    with pytest.raises(VendorApiError) as caught:
        list(client.alerts_updated(START))

    assert caught.value.status == 403
    [page] = list(client.alerts_updated(START))
    assert len(page) == 3  # the next pass is clean


def test_a_malformed_record_inside_a_page_reaches_the_caller(
    sim: CrowdStrikeSimulator, http: httpx.Client, clock: Clock
) -> None:
    # GIVEN three alerts and, between them, a record without composite_id or a valid update time
    data = seed(sim, 3)
    broken = {"composite_id": "", "updated_timestamp": "yesterday", "name": "Broken"}
    sim.add_raw(broken, visible_at=START, sort_time=START + timedelta(milliseconds=1500))
    client, _ = connect(sim, http)
    # WHEN the page is read
    [page] = list(client.alerts_updated(START))
    # THEN the broken record is in it (for the poller to quarantine) and only it fails to normalize
    assert broken in page
    with pytest.raises(MalformedRecordError):
        normalize(broken)
    assert sorted(normalize(a).vendor_id for a in page if a != broken) == sorted(
        a["composite_id"] for a in data
    )


def test_duplicated_pages_cost_nothing_and_lose_nothing(
    sim: CrowdStrikeSimulator, http: httpx.Client
) -> None:
    # GIVEN an API that repeats the tail of the previous page on top of every page
    data = seed(sim, 1000)
    sim.faults.duplicate_page_probability = 1.0
    client, _ = connect(sim, http, page_size=250)
    # WHEN everything is read
    pages = list(client.alerts_updated(START))
    # THEN after the caller's dedup on (id, update time) every alert is there once, and the
    # pages still come in ascending update time
    seen = versions(pages)
    assert sorted(set(seen)) == sorted((a["composite_id"], a["updated_timestamp"]) for a in data)
    assert [t for _, t in seen] == sorted(t for _, t in seen)


def test_shuffled_pages_still_arrive_in_ascending_order(
    sim: CrowdStrikeSimulator, http: httpx.Client
) -> None:
    # GIVEN an API that returns each page's ids in random order
    data = seed(sim, 1000)
    sim.faults.shuffle_pages = True
    client, _ = connect(sim, http, page_size=250)
    # WHEN everything is read, THEN every alert arrives once and in ascending update time
    pages = list(client.alerts_updated(START))
    assert [cid for cid, _ in versions(pages)] == [a["composite_id"] for a in data]


def test_an_alert_updated_mid_listing_is_yielded_in_both_versions_in_order(
    sim: CrowdStrikeSimulator, http: httpx.Client, clock: Clock
) -> None:
    # GIVEN 1,000 alerts read 250 at a time
    data = seed(sim, 1000)
    client, _ = connect(sim, http, page_size=250)
    pages = client.alerts_updated(START)
    first = next(pages)
    # WHEN an analyst moves the first alert to in_progress before the next page is read
    updated = sim.update_alert(data[0]["composite_id"], clock.now, status="in_progress")
    rest = list(pages)
    # THEN both versions reach the caller, old first, and no other alert was skipped by the shift
    target = data[0]["composite_id"]
    seen = versions([first, *rest])
    assert {cid for cid, _ in seen} == {a["composite_id"] for a in data}
    assert [t for cid, t in seen if cid == target] == [
        data[0]["updated_timestamp"],
        updated["updated_timestamp"],
    ]
    assert [t for _, t in seen] == sorted(t for _, t in seen)
    statuses = [normalize(a).status for page in [first, *rest] for a in page if a["composite_id"] == target]
    assert statuses == ["new", "in_progress"]


def test_the_offset_window_is_crossed_by_restarting_from_a_newer_time(
    sim: CrowdStrikeSimulator, http: httpx.Client
) -> None:
    # GIVEN a vendor whose result window is 1,000 positions, and 2,500 alerts
    sim.result_window = 1000
    data = seed(sim, 2500)
    client, _ = connect(sim, http, page_size=300, offset_window=1000)
    # WHEN everything is read
    pages = list(client.alerts_updated(START))
    # THEN every alert arrives exactly once and in order, though no query went past the window
    assert [cid for cid, _ in versions(pages)] == [a["composite_id"] for a in data]


def test_the_feed_drives_the_poller_end_to_end(sim: CrowdStrikeSimulator, http: httpx.Client) -> None:
    # GIVEN 600 alerts and one broken record served by the vendor
    data = seed(sim, 600)
    sim.add_raw({"composite_id": "x", "updated_timestamp": None}, visible_at=START, sort_time=START)
    client, _ = connect(sim, http, page_size=250)
    sink, quarantine, checkpoints = MemorySink(), MemoryQuarantine(), MemoryCheckpoints()
    # WHEN one poll runs
    report = poll(
        CrowdStrikeFeed(client),
        sink,
        HintResolver(),
        checkpoints,
        quarantine,
        now=START + timedelta(minutes=20),
        settings=PollSettings(lookback=timedelta(hours=1)),
    )
    # THEN every alert is stored on its device, the broken one quarantined, the cursor at the newest
    assert report.outcomes["created"] == 600
    assert report.outcomes["quarantined"] == 1
    assert quarantine.items[0][0] == "crowdstrike"
    assert {e.entity_id for e in sink.items.values()} == {AID}
    assert checkpoints.saved["crowdstrike"] == START + timedelta(seconds=599)
    assert {e.vendor_id for e in sink.items.values()} == {a["composite_id"] for a in data}


# -- the simulator's wire behaviour ----------------------------------------------------------


def test_token_grant_is_201_with_region_and_rate_limit_headers(
    sim: CrowdStrikeSimulator, http: httpx.Client
) -> None:
    response = grant(http, sim)

    assert response.status_code == 201
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1799
    assert isinstance(body["access_token"], str)
    assert response.headers["X-Cs-Region"] == "us-1"
    assert response.headers["X-RateLimit-Limit"] == "6000"
    assert int(response.headers["X-RateLimit-Remaining"]) < 6000


def test_bad_credentials_are_a_403_with_errors(sim: CrowdStrikeSimulator, http: httpx.Client) -> None:
    response = grant(http, sim, secret="wrong")

    assert response.status_code == 403
    body = response.json()
    assert_envelope(body)
    assert body["errors"] == [{"code": 403, "message": "access denied, authorization failed"}]


def test_a_missing_or_stale_bearer_is_a_401_envelope(sim: CrowdStrikeSimulator, http: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = http.get(f"{sim.base_url}/alerts/queries/alerts/v2", headers=headers)

        assert response.status_code == 401
        body = response.json()
        assert_envelope(body)
        assert body["errors"] == [{"code": 401, "message": "access denied, invalid bearer token"}]
        assert body["resources"] == []
        assert response.headers["X-Cs-Traceid"] == body["meta"]["trace_id"]


def test_expire_tokens_invalidates_issued_tokens(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    url = f"{sim.base_url}/alerts/queries/alerts/v2"
    assert http.get(url, headers=auth).status_code == 200

    sim.expire_tokens()

    assert http.get(url, headers=auth).status_code == 401


def test_a_429_names_the_retry_epoch(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.throttle_next(1, retry_after_seconds=1)
    before = time.time()

    response = http.get(f"{sim.base_url}/alerts/queries/alerts/v2", headers=auth)

    assert response.status_code == 429
    retry_at = int(response.headers["X-RateLimit-RetryAfter"])
    assert before + 1 <= retry_at <= before + 2.5
    assert response.json()["errors"][0]["code"] == 429


def test_query_filters_sorts_and_pages_like_fql(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    data = seed(sim, 6)
    sim.add_alert(cs_alert(50, START + timedelta(seconds=3, milliseconds=500), product="idp"))
    url = f"{sim.base_url}/alerts/queries/alerts/v2"
    low, high = cs_timestamp(START + timedelta(seconds=1)), cs_timestamp(START + timedelta(seconds=4))
    window = f"updated_timestamp:>'{low}'+updated_timestamp:<='{high}'"

    both = http.get(url, params={"filter": window, "sort": "updated_timestamp|asc"}, headers=auth).json()
    epp = http.get(
        url,
        params={
            "filter": window + "+product:'epp'",
            "sort": "updated_timestamp|desc",
            "limit": 2,
            "offset": 1,
        },
        headers=auth,
    ).json()

    assert_envelope(both)
    assert len(both["resources"]) == 4  # 2, 3, the idp one, 4
    assert both["resources"][2].endswith("-10197-50")
    assert epp["resources"] == [data[3]["composite_id"], data[2]["composite_id"]]
    assert epp["meta"]["pagination"] == {"offset": 1, "limit": 2, "total": 3}
    assert epp["meta"]["powered_by"] == "detectsapi"


def test_an_unencoded_plus_between_clauses_still_means_and(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    # GIVEN a client that writes FQL's `+` into the URL as is (it then arrives as a space)
    seed(sim, 3)
    sim.add_alert(cs_alert(60, START + timedelta(seconds=2), product="idp"))
    fql = f"product:'idp'+updated_timestamp:>='{cs_timestamp(START)}'"
    url = f"{sim.base_url}/alerts/queries/alerts/v2?filter={fql}"
    # WHEN it queries, THEN both clauses apply
    response = http.get(url, headers=auth)
    assert response.status_code == 200, response.text
    assert [cid.rsplit("-", 1)[1] for cid in response.json()["resources"]] == ["60"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "10001"},
        {"limit": "0"},
        {"offset": "9900", "limit": "200"},
        {"filter": "updated_timestamp:>2025-03-04T10:00:00Z"},
        {"filter": "severity:>'50'"},
        {"filter": "updated_timestamp:>='yesterday'"},
        {"sort": "name|asc"},
    ],
)
def test_invalid_query_parameters_are_a_400(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str], params: dict[str, str]
) -> None:
    response = http.get(f"{sim.base_url}/alerts/queries/alerts/v2", params=params, headers=auth)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 400


def test_entities_return_known_alerts_and_omit_unknown_ids(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    data = seed(sim, 2)
    wanted = [data[1]["composite_id"], f"{CID}:ind:{AID}:nope", data[0]["composite_id"]]

    response = http.post(
        f"{sim.base_url}/alerts/entities/alerts/v2", json={"composite_ids": wanted}, headers=auth
    )

    assert response.status_code == 200
    assert [a["composite_id"] for a in response.json()["resources"]] == [wanted[0], wanted[2]]
    empty = http.post(f"{sim.base_url}/alerts/entities/alerts/v2", json={"composite_ids": []}, headers=auth)
    assert empty.status_code == 400


def test_combined_pages_with_after_tokens(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    # GIVEN 25 alerts
    data = seed(sim, 25)
    url = f"{sim.base_url}/alerts/combined/alerts/v1"
    request = {
        "filter": f"updated_timestamp:>='{cs_timestamp(START)}'",
        "sort": "updated_timestamp|asc",
        "limit": 10,
    }
    # WHEN the combined endpoint is followed by `after` until it is absent
    seen: list[str] = []
    while True:
        body = http.post(url, json=request, headers=auth).json()
        seen += [a["composite_id"] for a in body["resources"]]
        after = body["meta"]["pagination"].get("after")
        if not after:
            break
        request["after"] = after
    # THEN every alert came once, in order, with full objects
    assert seen == [a["composite_id"] for a in data]
    assert body["meta"]["pagination"]["total"] == 25


def test_combined_refuses_a_large_limit_and_an_after_from_another_sort(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    seed(sim, 5)
    url = f"{sim.base_url}/alerts/combined/alerts/v1"
    too_big = http.post(url, json={"limit": 1001}, headers=auth)
    first = http.post(url, json={"limit": 2, "sort": "updated_timestamp|asc"}, headers=auth).json()
    other_sort = http.post(
        url,
        json={"limit": 2, "sort": "created_timestamp|asc", "after": first["meta"]["pagination"]["after"]},
        headers=auth,
    )
    forged = http.post(
        url, json={"limit": 2, "after": base64.urlsafe_b64encode(b"{}").decode()}, headers=auth
    )

    assert too_big.status_code == 400
    assert other_sort.status_code == 400
    assert forged.status_code == 400


def test_containment_is_accepted_reflected_and_lifted(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    # GIVEN a host known from an alert
    data = seed(sim, 1)
    client, _ = connect(sim, http)
    # WHEN it is contained through the client
    assert client.contain(AID) == [AID]
    # THEN the simulator records it, later alerts show it, and containing again is a conflict
    assert sim.contained == {AID}
    [[alert]] = list(client.alerts_updated(START))
    assert alert["device"]["status"] == "contained"
    again = http.post(
        f"{sim.base_url}/devices/entities/devices-actions/v2",
        params={"action_name": "contain"},
        json={"ids": [AID]},
        headers=auth,
    )
    assert again.status_code == 409
    assert client.lift_containment(AID) == [AID]
    assert sim.contained == set()
    assert data[0]["device"]["status"] == "normal"


def test_containing_an_unknown_host_is_a_404_error_entry(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    response = http.post(
        f"{sim.base_url}/devices/entities/devices-actions/v2",
        params={"action_name": "contain"},
        json={"ids": ["f" * 32]},
        headers=auth,
    )
    bad_action = http.post(
        f"{sim.base_url}/devices/entities/devices-actions/v2",
        params={"action_name": "reboot"},
        json={"ids": [AID]},
        headers=auth,
    )

    assert response.status_code == 404
    assert_envelope(response.json())
    assert response.json()["errors"] == [
        {"code": 404, "message": f"No matching device found for ID {'f' * 32}"}
    ]
    assert bad_action.status_code == 400


def test_errors_in_200_knob_answers_200_with_errors(
    sim: CrowdStrikeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.errors_in_200_next(1, code=403, message="access denied, scope not permitted")
    url = f"{sim.base_url}/alerts/queries/alerts/v2"

    flagged = http.get(url, headers=auth)
    clean = http.get(url, headers=auth)

    assert flagged.status_code == 200
    assert flagged.json()["errors"] == [{"code": 403, "message": "access denied, scope not permitted"}]
    assert clean.json()["errors"] == []


# -- in-memory ports for the poller test ------------------------------------------------------


class MemorySink:
    def __init__(self) -> None:
        self.items: dict[str, Event] = {}

    def store_page(self, events: Sequence[Event]) -> list[WriteOutcome]:
        return [self.store(event) for event in events]

    def store(self, event: Event) -> WriteOutcome:
        if event.uid in self.items:
            return WriteOutcome.UNCHANGED
        self.items[event.uid] = event
        return WriteOutcome.CREATED


class HintResolver:
    def resolve(self, hints: DeviceHints, seen_at: datetime) -> str:
        assert hints.device_id is not None
        return hints.device_id


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[str, datetime] = {}

    def load(self, source: str) -> datetime | None:
        return self.saved.get(source)

    def save(self, source: str, cursor: datetime) -> None:
        self.saved[source] = cursor


class MemoryQuarantine:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, Any]] = []

    def put(self, source: str, reason: str, raw: Any) -> bool:
        item = (source, reason, json.dumps(raw))
        if item in self.items:
            return False
        self.items.append(item)
        return True
