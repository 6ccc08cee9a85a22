"""needle.sources.crowdstrike.client: OAuth2 tokens, query + entities paging, errors and the 429 epoch."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from needle.sources.crowdstrike.client import (
    CrowdStrikeClient,
    FalconTokens,
    cursor_of,
    retry_signal,
)
from needle.sources.crowdstrike.feed import CrowdStrikeFeed
from needle.sources.http import RetryPolicy, VendorApiError

pytestmark = pytest.mark.unit

API = "https://api.us-2.crowdstrike.test"
CLIENT_ID = "needle-falcon-poller"
SECRET = "Zk4_falcon-secret-value-never-logged"
SINCE = datetime(2025, 5, 12, 14, 0, tzinfo=UTC)
NOW = datetime(2025, 5, 12, 15, 0, tzinfo=UTC)
CID = "7d3e2f1a0b9c48d7a6e5f4c3b2a19080"
_FILTER = re.compile(r"updated_timestamp:>='(?P<low>[^']+)'(?:\+updated_timestamp:<'(?P<high>[^']+)')?")


def ns(text: str) -> int:
    """Nanoseconds of a `...Z` time, every fractional digit counted (the fake's sort key)."""
    base, _, frac = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(base).replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000_000 + int(frac[:9].ljust(9, "0"))


def stamp(moment: datetime, nanos: int = 0) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{nanos:03d}Z"


def alert(n: int, updated: str) -> dict[str, Any]:
    return {
        "composite_id": f"{CID}:ind:c4a1e9f27b3d4e58a0f6b2d9e7c13a54:{n:011d}-10197-1",
        "updated_timestamp": updated,
        "name": "CredentialDumpingLsassComsvcs",
    }


def alerts(
    count: int, start: datetime = SINCE, step: timedelta = timedelta(seconds=1)
) -> list[dict[str, Any]]:
    return [alert(n, stamp(start + n * step, n % 1000)) for n in range(count)]


def envelope(resources: list[Any], *, errors: list[Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "meta": {"query_time": 0.01, "powered_by": "detectsapi", "trace_id": "t-1", **meta},
        "resources": resources,
        "errors": errors or [],
    }


class FakeFalcon:
    """A MockTransport handler: the token endpoint, and the query/entities endpoints over a fixed
    alert list (filtered and sorted like the real API). `script` answers API calls first."""

    def __init__(self, data: list[dict[str, Any]], *, region: str = "us-2", expires_in: int = 1799) -> None:
        self.data = data
        self.region = region
        self.expires_in = expires_in
        self.script: list[httpx.Response] = []
        self.token_requests: list[httpx.Request] = []
        self.requests: list[httpx.Request] = []
        self.entities_override: Callable[[list[str]], list[Any]] | None = None
        self.by_path: dict[str, httpx.Response] = {}  # a fixed answer for one endpoint
        self.token_status = 201

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            self.token_requests.append(request)
            if self.token_status != 201:
                body = envelope([], errors=[{"code": self.token_status, "message": "access denied"}])
                return httpx.Response(self.token_status, json=body)
            return httpx.Response(
                201,
                json={
                    "access_token": f"token-{len(self.token_requests)}",
                    "token_type": "bearer",
                    "expires_in": self.expires_in,
                },
                headers={"X-Cs-Region": self.region},
            )
        self.requests.append(request)
        if self.script:
            return self.script.pop(0)
        if request.url.path in self.by_path:
            return self.by_path[request.url.path]
        if request.url.path == "/alerts/queries/alerts/v2":
            return self.query(request)
        if request.url.path == "/alerts/entities/alerts/v2":
            ids = json.loads(request.content)["composite_ids"]
            if self.entities_override is not None:
                return httpx.Response(200, json=envelope(self.entities_override(ids)))
            by_id = {a["composite_id"]: a for a in self.data}
            return httpx.Response(200, json=envelope([by_id[i] for i in ids if i in by_id]))
        return httpx.Response(404, json=envelope([], errors=[{"code": 404, "message": "Not Found"}]))

    def query(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        match = _FILTER.fullmatch(params["filter"])
        assert match is not None, params["filter"]
        assert params["sort"] == "updated_timestamp|asc"
        low, high = ns(match["low"]), ns(match["high"]) if match["high"] else None
        rows = sorted(
            (
                a
                for a in self.data
                if ns(a["updated_timestamp"]) >= low and (high is None or ns(a["updated_timestamp"]) < high)
            ),
            key=lambda a: (ns(a["updated_timestamp"]), a["composite_id"]),
        )
        offset, limit = int(params["offset"]), int(params["limit"])
        page = [a["composite_id"] for a in rows[offset : offset + limit]]
        pagination = {"offset": offset, "limit": limit, "total": len(rows)}
        return httpx.Response(200, json=envelope(page, pagination=pagination))

    def queries(self) -> list[tuple[str, str]]:
        return [
            (r.url.params["filter"], r.url.params["offset"])
            for r in self.requests
            if r.url.path == "/alerts/queries/alerts/v2"
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def make(
    server: FakeFalcon,
    *,
    page_size: int = 2,
    offset_window: int = 10_000,
    clock: Clock | None = None,
    sleeps: list[float] | None = None,
) -> tuple[CrowdStrikeClient, FalconTokens]:
    http = httpx.Client(transport=httpx.MockTransport(server), trust_env=False)
    tokens = FalconTokens(http, API + "/", CLIENT_ID, SECRET, clock=clock or Clock())
    client = CrowdStrikeClient(
        http,
        API,
        tokens,
        page_size=page_size,
        offset_window=offset_window,
        policy=RetryPolicy(attempts=3, base_delay=0.01, max_delay=30.0),
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
        now=lambda: NOW,
    )
    return client, tokens


def ids_of(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [a["composite_id"] for page in pages for a in page]


# --- tokens ---------------------------------------------------------------------------------


def test_token_request_posts_form_credentials_and_reports_the_region() -> None:
    # GIVEN a token endpoint that names another region
    server = FakeFalcon(alerts(1), region="us-2")
    client, tokens = make(server)
    # WHEN the first listing runs
    list(client.alerts_updated(SINCE))
    # THEN one form POST carried the credentials, the region is reported, the base URL is kept
    [token_request] = server.token_requests
    assert token_request.method == "POST"
    assert str(token_request.url) == f"{API}/oauth2/token"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request.content.decode()) == {"client_id": [CLIENT_ID], "client_secret": [SECRET]}
    assert tokens.region == "us-2"
    assert {r.url.host for r in server.requests} == {"api.us-2.crowdstrike.test"}
    assert {r.headers["Authorization"] for r in server.requests} == {"Bearer token-1"}


def test_member_cid_is_sent_when_configured() -> None:
    server = FakeFalcon([])
    http = httpx.Client(transport=httpx.MockTransport(server), trust_env=False)

    FalconTokens(http, API, CLIENT_ID, SECRET, member_cid="child-cid-1").token()

    assert parse_qs(server.token_requests[0].content.decode())["member_cid"] == ["child-cid-1"]


def test_token_is_reused_until_the_renew_window_then_renewed() -> None:
    # GIVEN a 1799 s token fetched at t=5000
    clock = Clock()
    server = FakeFalcon([])
    _, tokens = make(server, clock=clock)
    assert tokens.token() == "token-1"
    # WHEN time passes to just before the 120 s renew window, THEN the token is reused
    clock.now += 1799 - 120 - 0.5
    assert tokens.token() == "token-1"
    # WHEN the window opens, THEN a new token is fetched
    clock.now += 1.0
    assert tokens.token() == "token-2"
    assert tokens.fetched == 2


def test_a_short_lived_token_is_used_for_half_its_life() -> None:
    clock = Clock()
    server = FakeFalcon([], expires_in=60)
    _, tokens = make(server, clock=clock)

    tokens.token()
    clock.now += 29
    assert tokens.token() == "token-1"
    clock.now += 2
    assert tokens.token() == "token-2"


def test_a_refused_token_request_names_status_and_code_but_never_the_secret() -> None:
    server = FakeFalcon(alerts(1))
    server.token_status = 403
    client, _ = make(server)

    with pytest.raises(VendorApiError) as caught:
        list(client.alerts_updated(SINCE))

    assert caught.value.status == 403
    assert "HTTP 403 403" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_token_response_without_access_token_is_an_error() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"token_type": "bearer", "expires_in": 1799})

    http = httpx.Client(transport=httpx.MockTransport(handler), trust_env=False)

    with pytest.raises(VendorApiError, match="access_token"):
        FalconTokens(http, API, CLIENT_ID, SECRET).token()


def test_token_provider_repr_hides_the_secret_and_the_token() -> None:
    server = FakeFalcon([])
    _, tokens = make(server)
    tokens.token()

    assert SECRET not in repr(tokens)
    assert "token-1" not in repr(tokens)


def test_a_401_refreshes_the_token_and_retries() -> None:
    server = FakeFalcon(alerts(1))
    server.script = [
        httpx.Response(
            401, json=envelope([], errors=[{"code": 401, "message": "access denied, invalid bearer token"}])
        )
    ]
    client, _ = make(server)

    pages = list(client.alerts_updated(SINCE))

    assert ids_of(pages) == [alerts(1)[0]["composite_id"]]
    assert len(server.token_requests) == 2
    assert server.requests[1].headers["Authorization"] == "Bearer token-2"


# --- listing --------------------------------------------------------------------------------


def test_first_query_asks_for_updated_since_in_ascending_order_then_fetches_entities() -> None:
    # GIVEN one alert
    data = alerts(1)
    server = FakeFalcon(data)
    client, _ = make(server, page_size=50)
    # WHEN alerts updated since a time are read
    pages = list(client.alerts_updated(SINCE))
    # THEN one query with the FQL filter, then one entities call with its ids
    assert pages == [data]
    query, entities = server.requests
    assert query.method == "GET"
    assert query.url.path == "/alerts/queries/alerts/v2"
    assert dict(query.url.params) == {
        "filter": "updated_timestamp:>='2025-05-12T14:00:00.000000Z'",
        "sort": "updated_timestamp|asc",
        "offset": "0",
        "limit": "50",
    }
    assert entities.method == "POST"
    assert entities.url.path == "/alerts/entities/alerts/v2"
    assert json.loads(entities.content) == {"composite_ids": [data[0]["composite_id"]]}
    assert client.requests_made == 2


def test_pages_overlap_by_one_position_until_the_total_is_reached() -> None:
    # GIVEN seven alerts and a page size of three
    data = alerts(7)
    server = FakeFalcon(data)
    client, _ = make(server, page_size=3)
    # WHEN every page is read
    pages = list(client.alerts_updated(SINCE))
    # THEN each query starts on the last position of the one before (the overlap that detects
    # shifts), the overlapping id is not fetched again, and the query reaching the total is last
    assert [offset for _, offset in server.queries()] == ["0", "2", "4"]
    assert [len(p) for p in pages] == [3, 2, 2]
    assert ids_of(pages) == [a["composite_id"] for a in data]
    fetched = [json.loads(r.content)["composite_ids"] for r in server.requests if r.method == "POST"]
    assert [len(batch) for batch in fetched] == [3, 2, 2]


def test_a_listing_ends_on_the_query_that_reaches_the_total() -> None:
    server = FakeFalcon(alerts(6))
    client, _ = make(server, page_size=4)

    pages = list(client.alerts_updated(SINCE))

    assert [len(p) for p in pages] == [4, 2]
    assert [offset for _, offset in server.queries()] == ["0", "3"]


def test_no_alerts_means_one_query_and_no_entities_call() -> None:
    server = FakeFalcon([])
    client, _ = make(server)

    assert list(client.alerts_updated(SINCE)) == []
    assert [r.url.path for r in server.requests] == ["/alerts/queries/alerts/v2"]


def test_each_page_is_sorted_by_the_alerts_own_update_time() -> None:
    # GIVEN an entities endpoint that answers in reverse order, one time with nanosecond digits
    data = [
        alert(1, "2025-05-12T14:00:01.5Z"),
        alert(2, "2025-05-12T14:00:01.500000001Z"),
        alert(3, "2025-05-12T14:00:02Z"),
    ]
    server = FakeFalcon(data)
    server.entities_override = lambda ids: [a for a in reversed(data) if a["composite_id"] in ids]
    client, _ = make(server, page_size=10)
    # WHEN the page is read
    [page] = list(client.alerts_updated(SINCE))
    # THEN it is in ascending update time, nanoseconds included
    assert [a["updated_timestamp"] for a in page] == [a["updated_timestamp"] for a in data]


def test_an_upper_bound_adds_an_exclusive_clause() -> None:
    server = FakeFalcon(alerts(5))
    client, _ = make(server, page_size=10)

    pages = list(client.alerts_updated(SINCE, SINCE + timedelta(seconds=3)))

    assert server.queries()[0][0] == (
        "updated_timestamp:>='2025-05-12T14:00:00.000000Z'+updated_timestamp:<'2025-05-12T14:00:03.000000Z'"
    )
    assert len(ids_of(pages)) == 3


def test_repeats_of_the_previous_page_are_not_fetched_again() -> None:
    # GIVEN an API that serves the tail of the previous page again on top of the next one
    data = alerts(6)
    server = FakeFalcon(data)
    client, _ = make(server, page_size=3)
    pages = client.alerts_updated(SINCE)
    first = next(pages)
    repeated = [a["composite_id"] for a in data[1:5]]  # 1, 2 repeated; 2 is also the overlap
    server.script = [
        httpx.Response(
            200, json=envelope(repeated[:1] + repeated, pagination={"offset": 2, "limit": 3, "total": 6})
        )
    ]
    # WHEN the rest is read
    rest = list(pages)
    # THEN every alert arrives once and the entities calls asked only for new ids
    assert ids_of([first, *rest]) == [a["composite_id"] for a in data]
    fetched = [json.loads(r.content)["composite_ids"] for r in server.requests if r.method == "POST"]
    assert fetched[1] == [data[3]["composite_id"], data[4]["composite_id"]]


def test_an_alert_updated_mid_listing_costs_no_other_alert() -> None:
    # GIVEN seven alerts read three at a time
    data = alerts(7)
    server = FakeFalcon(data)
    client, _ = make(server, page_size=3)
    pages = client.alerts_updated(SINCE)
    first = next(pages)
    # WHEN alert 0 is updated after the first page: it moves to the end and every later alert
    # shifts down one position (plain offset paging would now skip alert 3)
    updated = dict(data[0], updated_timestamp="2025-05-12T14:30:00.000000000Z")
    server.data = [updated, *data[1:]]
    rest = list(pages)
    # THEN every alert arrives, the updated one twice (old version first), in ascending order
    seen = [(a["composite_id"], a["updated_timestamp"]) for page in [first, *rest] for a in page]
    assert {cid for cid, _ in seen} == {a["composite_id"] for a in data}
    assert [t for cid, t in seen if cid == data[0]["composite_id"]] == [
        data[0]["updated_timestamp"],
        updated["updated_timestamp"],
    ]
    assert [ns(t) for _, t in seen] == sorted(ns(t) for _, t in seen)
    # ... after one restart from the oldest time of the page read before the shift was seen
    assert server.queries()[2][0] == f"updated_timestamp:>='{data[0]['updated_timestamp']}'"


def test_a_listing_that_keeps_shifting_gives_up_instead_of_looping() -> None:
    # GIVEN an API whose positions shift before every follow-up query
    data = alerts(20)
    server = FakeFalcon(data)
    original = server.query

    def shifting(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        if offset == 0:
            return original(request)
        params = dict(request.url.params, offset=str(offset + 5))
        return original(httpx.Request("GET", request.url.copy_with(params=params)))

    server.query = shifting  # type: ignore[method-assign]
    client, _ = make(server, page_size=3)
    # WHEN it is read, THEN the pass stops with an error (the poller retries from its checkpoint)
    with pytest.raises(VendorApiError, match="keeps shifting"):
        list(client.alerts_updated(SINCE))


# --- the offset window ----------------------------------------------------------------------


def test_the_listing_restarts_from_the_last_page_before_crossing_the_offset_window() -> None:
    # GIVEN nine alerts, pages of three and a window of six
    data = alerts(9)
    server = FakeFalcon(data)
    client, _ = make(server, page_size=3, offset_window=6)
    # WHEN every page is read
    pages = list(client.alerts_updated(SINCE))
    # THEN every alert arrives once, in ascending order, and the query restarted at the oldest
    # update time of the page before the window (as the vendor wrote it, nanoseconds and all);
    # the re-read versions of that page are dropped
    assert ids_of(pages) == [a["composite_id"] for a in data]
    assert [offset for _, offset in server.queries()] == ["0", "2", "0", "2", "0"]
    filters = [f for f, _ in server.queries()]
    assert filters[2] == f"updated_timestamp:>='{data[3]['updated_timestamp']}'"
    assert filters[4] == f"updated_timestamp:>='{data[6]['updated_timestamp']}'"


def test_a_restart_does_not_skip_when_an_alert_was_updated_between_query_and_entities() -> None:
    # GIVEN nine alerts; alert 4 is updated (far ahead) between the 2nd query and its entities call
    data = alerts(9)
    server = FakeFalcon(data)
    moved = dict(data[4], updated_timestamp="2025-05-12T16:00:00.000000000Z")

    def entities(ids: list[str]) -> list[Any]:
        if data[4]["composite_id"] in ids:
            server.data = [moved if a is data[4] else a for a in server.data]
        by_id = {a["composite_id"]: a for a in server.data}
        return [by_id[i] for i in ids if i in by_id]

    server.entities_override = entities
    client, _ = make(server, page_size=3, offset_window=6)
    # WHEN every page is read
    seen = ids_of(list(client.alerts_updated(SINCE)))
    # THEN no alert is lost: the restart went from the oldest time on that page, not the newest
    assert set(seen) == {a["composite_id"] for a in data}


def test_a_window_full_of_one_update_time_is_an_error_not_a_loop() -> None:
    same = "2025-05-12T14:00:00.000000000Z"
    server = FakeFalcon([alert(n, same) for n in range(9)])
    client, _ = make(server, page_size=3, offset_window=6)

    with pytest.raises(VendorApiError, match="cannot advance"):
        list(client.alerts_updated(SINCE))


def test_page_size_and_window_are_validated() -> None:
    server = FakeFalcon([])
    with pytest.raises(ValueError, match="page_size"):
        make(server, page_size=1)
    with pytest.raises(ValueError, match="page_size"):
        make(server, page_size=10_001, offset_window=30_000)
    with pytest.raises(ValueError, match="two pages"):
        make(server, page_size=600, offset_window=1000)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/alerts/queries/alerts/v2", "/alerts/entities/alerts/v2"])
def test_a_200_with_errors_is_a_vendor_api_error_with_the_code(path: str) -> None:
    # GIVEN the query (or the entities call) answers 200 with an `errors` entry (a scope error)
    server = FakeFalcon(alerts(1))
    server.by_path[path] = httpx.Response(
        200, json=envelope([], errors=[{"code": 403, "message": "access denied, authorization failed"}])
    )
    client, _ = make(server)
    # WHEN it is read, THEN it fails with the vendor code instead of looking like an empty page
    with pytest.raises(VendorApiError) as caught:
        list(client.alerts_updated(SINCE))
    assert caught.value.status == 403
    assert "HTTP 200 with errors: code 403" in str(caught.value)
    assert server.requests[-1].url.path == path


def test_an_error_status_surfaces_with_its_status() -> None:
    server = FakeFalcon(alerts(1))
    server.script = [httpx.Response(400, json=envelope([], errors=[{"code": 400, "message": "bad filter"}]))]
    client, _ = make(server)

    with pytest.raises(VendorApiError) as caught:
        list(client.alerts_updated(SINCE))

    assert caught.value.status == 400


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"resources": {"a": 1}, "errors": []}),
    ],
)
def test_a_malformed_body_is_a_vendor_api_error(response: httpx.Response) -> None:
    server = FakeFalcon(alerts(1))
    server.script = [response]
    client, _ = make(server)

    with pytest.raises(VendorApiError):
        list(client.alerts_updated(SINCE))


def test_a_5xx_is_retried_with_backoff() -> None:
    data = alerts(1)
    server = FakeFalcon(data)
    server.script = [httpx.Response(503, json=envelope([], errors=[{"code": 503, "message": "unavailable"}]))]
    sleeps: list[float] = []
    client, _ = make(server, sleeps=sleeps)

    assert ids_of(list(client.alerts_updated(SINCE))) == [data[0]["composite_id"]]
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.01  # full jitter over the first backoff step


# --- the 429 signal -------------------------------------------------------------------------


def _throttled(headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(
        429, headers=headers, json=envelope([], errors=[{"code": 429, "message": "rate limited"}])
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-RetryAfter": str(int(NOW.timestamp()) + 7)}, 7.0),
        ({"x-ratelimit-retryafter": str(int(NOW.timestamp()) + 2)}, 2.0),
        ({"X-RateLimit-RetryAfter": str(int(NOW.timestamp()) - 30)}, 0.0),
        ({"X-RateLimit-RetryAfter": "soon", "Retry-After": "4"}, 4.0),
        ({"Retry-After": "3"}, 3.0),
        ({}, None),
    ],
)
def test_retry_signal_reads_the_epoch_header(headers: dict[str, str], expected: float | None) -> None:
    assert retry_signal(_throttled(headers), lambda: NOW) == expected


def test_a_429_waits_until_the_epoch_the_vendor_names() -> None:
    # GIVEN a 429 that says "retry at now + 7 s" as a Unix epoch
    data = alerts(1)
    server = FakeFalcon(data)
    server.script = [_throttled({"X-RateLimit-RetryAfter": str(int(NOW.timestamp()) + 7)})]
    sleeps: list[float] = []
    client, _ = make(server, sleeps=sleeps)
    # WHEN the listing runs
    pages = list(client.alerts_updated(SINCE))
    # THEN it slept 7 s (not 1.7e9 s, not the backoff) and then succeeded
    assert sleeps == [7.0]
    assert ids_of(pages) == [data[0]["composite_id"]]


# --- containment, cursor, feed ----------------------------------------------------------------


def test_contain_posts_the_device_action_and_returns_accepted_ids() -> None:
    aid = "c4a1e9f27b3d4e58a0f6b2d9e7c13a54"
    server = FakeFalcon([])
    server.script = [
        httpx.Response(202, json=envelope([{"id": aid, "path": "/devices/entities/devices/v2"}]))
    ]
    client, _ = make(server)

    assert client.contain(aid) == [aid]

    [request] = server.requests
    assert request.url.path == "/devices/entities/devices-actions/v2"
    assert request.url.params["action_name"] == "contain"
    assert json.loads(request.content) == {"ids": [aid]}


def test_lift_containment_of_an_unknown_device_is_an_error() -> None:
    server = FakeFalcon([])
    server.script = [
        httpx.Response(404, json=envelope([], errors=[{"code": 404, "message": "No matching device found"}]))
    ]
    client, _ = make(server)

    with pytest.raises(VendorApiError) as caught:
        client.lift_containment("0" * 32)

    assert caught.value.status == 404
    assert server.requests[0].url.params["action_name"] == "lift_containment"


def test_cursor_of_is_the_update_time() -> None:
    assert cursor_of({"updated_timestamp": "2025-05-12T14:09:30.441500917Z"}) == datetime(
        2025, 5, 12, 14, 9, 30, 441500, tzinfo=UTC
    )


def test_the_feed_is_ordered_and_delegates_to_the_client() -> None:
    data = alerts(3)
    client, _ = make(FakeFalcon(data), page_size=10)
    feed = CrowdStrikeFeed(client)

    assert (feed.source, feed.ordered) == ("crowdstrike", True)
    assert ids_of(list(feed.pages(SINCE, None))) == [a["composite_id"] for a in data]
    assert feed.cursor_of(data[0]) == datetime(2025, 5, 12, 14, 0, tzinfo=UTC)
