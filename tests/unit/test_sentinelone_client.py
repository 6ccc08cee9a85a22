"""needle.sources.sentinelone.client and feed: ApiToken auth, updatedAt filter, cursor paging, retries."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from needle.sources.http import RetryPolicy, VendorApiError
from needle.sources.sentinelone.client import SentinelOneClient, StaticApiToken, s1_time
from needle.sources.sentinelone.feed import SentinelOneFeed

pytestmark = pytest.mark.unit

API = "https://usea1-northwind.sentinelone.net"
TOKEN = "eyJraWQiOiJ1cy1lYXN0LTEtcHJvZC0wIiwiYWxnIjoiRVMyNTYifQ.s1-secret-do-not-log"
SINCE = datetime(2025, 6, 3, 8, 0, 0, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sentinelone"

Handler = Callable[[httpx.Request], httpx.Response]


def threats(n: int) -> list[dict[str, Any]]:
    template = json.loads((FIXTURES / "threat_credential_dump.json").read_text(encoding="utf-8"))
    return [{**template, "id": f"22419022155671204{i:02d}"} for i in range(n)]


class FakeThreatsApi:
    """`GET /web/api/v2.1/threats` over a fixed list, cursor = the next index as a string."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        start = int(request.url.params.get("cursor", "0"))
        limit = int(request.url.params["limit"])
        end = start + limit
        following = str(end) if end < len(self.rows) else None
        return httpx.Response(
            200,
            json={
                "data": self.rows[start:end],
                "pagination": {"nextCursor": following, "totalItems": len(self.rows)},
            },
        )


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client_for(
    handler: Handler, *, page_size: int = 1000, token: str = TOKEN, sleep: Sleeps | None = None
) -> SentinelOneClient:
    http = httpx.Client(transport=httpx.MockTransport(handler), trust_env=False)
    return SentinelOneClient(
        http,
        API + "/",
        StaticApiToken(token),
        page_size=page_size,
        policy=RetryPolicy(attempts=3, base_delay=0.0),
        sleep=sleep or Sleeps(),
    )


def test_first_request_filters_sorts_and_authenticates_with_the_api_token() -> None:
    # GIVEN an API holding fewer threats than a page
    api = FakeThreatsApi(threats(1))
    # WHEN threats updated since a time are read
    pages = list(client_for(api, page_size=250).threats_updated(SINCE))
    # THEN one request asked for that window in ascending update order with the static token
    assert [len(p) for p in pages] == [1]
    [request] = api.requests
    assert request.method == "GET"
    assert request.url.path == "/web/api/v2.1/threats"
    assert dict(request.url.params) == {
        "updatedAt__gte": "2025-06-03T08:00:00.000000Z",
        "sortBy": "updatedAt",
        "sortOrder": "asc",
        "limit": "250",
    }
    assert request.headers["Authorization"] == f"ApiToken {TOKEN}"


def test_the_filter_is_utc_with_microseconds() -> None:
    api = FakeThreatsApi([])
    since = datetime(2025, 6, 3, 10, 0, 0, 270581, tzinfo=timezone(timedelta(hours=2)))

    list(client_for(api).threats_updated(since))

    assert api.requests[0].url.params["updatedAt__gte"] == "2025-06-03T08:00:00.270581Z"
    with pytest.raises(ValueError, match="aware"):
        s1_time(datetime(2025, 6, 3))


def test_an_upper_bound_becomes_updated_at_lt() -> None:
    api = FakeThreatsApi([])

    list(client_for(api).threats_updated(SINCE, SINCE + timedelta(hours=6)))

    assert api.requests[0].url.params["updatedAt__lt"] == "2025-06-03T14:00:00.000000Z"


def test_next_cursor_is_followed_until_null_keeping_the_query() -> None:
    # GIVEN five threats and a page size of two
    rows = threats(5)
    api = FakeThreatsApi(rows)
    # WHEN every page is read
    pages = list(client_for(api, page_size=2).threats_updated(SINCE))
    # THEN pages of 2, 2, 1 came back in order; later requests add the cursor to the same query
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [t["id"] for p in pages for t in p] == [t["id"] for t in rows]
    assert [r.url.params.get("cursor") for r in api.requests] == [None, "2", "4"]
    assert {r.url.params["updatedAt__gte"] for r in api.requests} == {"2025-06-03T08:00:00.000000Z"}
    assert {r.url.params["sortBy"] for r in api.requests} == {"updatedAt"}


def test_a_response_without_pagination_is_the_last_page() -> None:
    # a whole `/threats` response as some exports save it: {"data": [...]} only
    body = json.loads((FIXTURES / "threats_response_decommissioned.json").read_text(encoding="utf-8"))
    client = client_for(lambda _request: httpx.Response(200, json=body))

    pages = list(client.threats_updated(SINCE))

    assert [len(p) for p in pages] == [2]


def test_an_empty_page_ends_paging_even_with_a_cursor() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "pagination": {"nextCursor": "abc", "totalItems": 0}})

    assert list(client_for(handler).threats_updated(SINCE)) == [[]]
    assert len(seen) == 1


def test_a_cursor_that_does_not_move_is_an_error() -> None:
    body = {"data": threats(1), "pagination": {"nextCursor": "c2FtZQ==", "totalItems": 9}}
    client = client_for(lambda _request: httpx.Response(200, json=body))

    with pytest.raises(VendorApiError, match="same nextCursor"):
        list(client.threats_updated(SINCE))


@pytest.mark.parametrize("body", [{"data": None}, {"data": {"id": "1"}}, [], {"errors": []}])
def test_a_body_without_a_data_list_is_a_vendor_api_error(body: Any) -> None:
    client = client_for(lambda _request: httpx.Response(200, json=body))

    with pytest.raises(VendorApiError, match="data"):
        list(client.threats_updated(SINCE))


def test_a_refused_token_fails_clearly_after_one_request() -> None:
    # GIVEN an API that refuses the token
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            401, json={"errors": [{"code": 4010010, "detail": None, "title": "Authentication Failed"}]}
        )

    client = client_for(handler)
    # WHEN threats are read
    with pytest.raises(VendorApiError) as caught:
        list(client.threats_updated(SINCE))
    # THEN one request was made (a static token cannot be refreshed), the error says so, no secret
    assert len(seen) == 1
    assert caught.value.status == 401
    assert "API token" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert "s1-secret" not in repr(client.tokens)


def test_the_token_is_tried_again_on_the_next_run() -> None:
    statuses = [401, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        status = statuses.pop(0)
        return httpx.Response(status, json={"data": [], "pagination": {"nextCursor": None}})

    client = client_for(handler)
    with pytest.raises(VendorApiError):
        list(client.threats_updated(SINCE))

    assert list(client.threats_updated(SINCE)) == [[]]


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        StaticApiToken("  ")


def test_429_waits_for_retry_after() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "7"}, json={"errors": [{"code": 4290010}]}),
        httpx.Response(200, json={"data": threats(1), "pagination": {"nextCursor": None}}),
    ]
    sleeps = Sleeps()

    pages = list(client_for(lambda _request: answers.pop(0), sleep=sleeps).threats_updated(SINCE))

    assert [len(p) for p in pages] == [1]
    assert sleeps.waits == [7.0]


def test_5xx_is_retried_then_gives_up_with_the_status() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"errors": [{"code": 5030010, "title": "Service Unavailable"}]})

    with pytest.raises(VendorApiError) as caught:
        list(client_for(handler).threats_updated(SINCE))

    assert caught.value.status == 503
    assert len(calls) == 3


def test_a_400_is_not_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"errors": [{"code": 4000010, "title": "Validation Error"}]})

    with pytest.raises(VendorApiError) as caught:
        list(client_for(handler).threats_updated(SINCE))

    assert caught.value.status == 400
    assert len(calls) == 1


@pytest.mark.parametrize("size", [0, 1001])
def test_page_size_must_be_within_the_api_limit(size: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        client_for(FakeThreatsApi([]), page_size=size)


def test_disconnect_posts_an_id_filter_and_returns_affected() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"affected": 1}})

    client = client_for(handler)

    assert client.disconnect(["2241190034487712208"]) == 1
    assert client.connect(["2241190034487712208"]) == 1
    assert [r.url.path for r in seen] == [
        "/web/api/v2.1/agents/actions/disconnect",
        "/web/api/v2.1/agents/actions/connect",
    ]
    assert json.loads(seen[0].content) == {"filter": {"ids": ["2241190034487712208"]}, "data": {}}
    assert seen[0].headers["Authorization"] == f"ApiToken {TOKEN}"


def test_disconnect_never_sends_an_empty_filter() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"affected": 0}})

    client = client_for(handler)

    with pytest.raises(ValueError, match="agent id"):
        client.disconnect([])
    assert seen == []


def test_disconnect_without_affected_is_an_error() -> None:
    client = client_for(lambda _request: httpx.Response(200, json={"data": {}}))

    with pytest.raises(VendorApiError, match="affected"):
        client.disconnect(["1"])


def test_feed_is_ordered_and_normalizes_with_its_console() -> None:
    rows = threats(3)
    client = client_for(FakeThreatsApi(rows), page_size=2)
    feed = SentinelOneFeed(client, "https://usea1-northwind.sentinelone.net")

    assert feed.source == "sentinelone"
    assert feed.ordered is True
    pages = list(feed.pages(SINCE, None))
    assert [len(p) for p in pages] == [2, 1]
    event = feed.normalize(pages[0][0])
    assert event.console_url == (
        "https://usea1-northwind.sentinelone.net/incidents/threats/2241902215567120400/overview"
    )
    assert feed.cursor_of(pages[0][0]) == datetime(2025, 6, 3, 8, 22, 44, 270581, tzinfo=UTC)
