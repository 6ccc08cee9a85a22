"""needle.sources.graph.client and feed: ordered alerts_v2 paging, nextLink, the $skip ceiling, 429."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from needle.model.event import MalformedRecordError
from needle.sources.graph.client import (
    SCOPE,
    GraphClient,
    cursor_of,
    graph_tokens,
)
from needle.sources.graph.feed import GraphFeed
from needle.sources.http import RetryPolicy, VendorApiError

pytestmark = pytest.mark.unit

GRAPH = "https://graph.example.test"
ALERTS = f"{GRAPH}/v1.0/security/alerts_v2"
SINCE = datetime(2025, 6, 17, 8, 0, 0, 250000, tzinfo=UTC)
DEVICE = "9c2e4a6b8d0f1e3c5a7b9d1f3e5c7a9b1d3f5e7c"


class StaticTokens:
    def __init__(self) -> None:
        self.invalidated = 0

    def token(self) -> str:
        return f"token-{self.invalidated + 1}"

    def invalidate(self) -> None:
        self.invalidated += 1


def graph_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "1Z"  # Graph sends up to seven digits


def make_alert(n: int, updated: datetime) -> dict[str, Any]:
    return {
        "id": f"da6387912455{n:08d}_-1873326650",
        "title": "Credential dumping through comsvcs.dll MiniDump",
        "severity": "high",
        "status": "new",
        "createdDateTime": graph_time(updated - timedelta(minutes=5)),
        "lastUpdateDateTime": graph_time(updated),
        "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": DEVICE}],
    }


class FakeGraphApi:
    """alerts_v2 over a fixed list: `lastUpdateDateTime ge` filter, ascending order, `$top` clamped at
    1000, `$skip`, `$top + $skip > 6000` refused, `@odata.nextLink` while rows remain."""

    def __init__(self, alerts: list[dict[str, Any]]) -> None:
        self.alerts = sorted(alerts, key=lambda a: (a["lastUpdateDateTime"], a["id"]))
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        params = request.url.params
        top, skip = min(int(params["$top"]), 1000), int(params.get("$skip", "0"))
        if top + skip > 6000:
            return httpx.Response(400, json={"error": {"code": "BadRequest", "message": "top+skip"}})
        field, op, since = params["$filter"].split(" ")[:3]
        assert (field, op, params["$orderby"]) == ("lastUpdateDateTime", "ge", "lastUpdateDateTime asc")
        rows = [a for a in self.alerts if cursor_of(a) >= datetime.fromisoformat(since)]
        body: dict[str, Any] = {"value": rows[skip : skip + top]}
        if skip + top < len(rows):
            query = {
                "$filter": params["$filter"],
                "$orderby": params["$orderby"],
                "$top": top,
                "$skip": skip + top,
            }
            body["@odata.nextLink"] = f"{ALERTS}?{urlencode(query)}"
        return httpx.Response(200, json=body)

    def skips(self) -> list[str | None]:
        return [r.url.params.get("$skip") for r in self.requests]

    def filters(self) -> list[str]:
        return [r.url.params["$filter"] for r in self.requests]


def client_for(
    handler: Callable[[httpx.Request], httpx.Response],
    page_size: int = 1000,
    *,
    tokens: StaticTokens | None = None,
    sleep: Callable[[float], None] | None = None,
    max_skip: int = 5000,
) -> GraphClient:
    http = httpx.Client(transport=httpx.MockTransport(handler), trust_env=False)
    return GraphClient(
        http,
        GRAPH + "/",
        tokens or StaticTokens(),
        page_size=page_size,
        policy=RetryPolicy(attempts=3, base_delay=0.0),
        sleep=sleep or (lambda _seconds: None),
        max_skip=max_skip,
    )


def alerts_at(
    count: int, start: datetime = SINCE, step: timedelta = timedelta(seconds=1)
) -> list[dict[str, Any]]:
    return [make_alert(n, start + n * step) for n in range(count)]


def ids(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [row["id"] for page in pages for row in page]


# --- the first request -----------------------------------------------------------------------


def test_first_request_filters_orders_and_pages_on_last_update_time() -> None:
    # GIVEN an API holding fewer alerts than a page
    api = FakeGraphApi(alerts_at(1))
    client = client_for(api, page_size=500)
    # WHEN alerts updated since a time are read
    pages = list(client.alerts_updated(SINCE))
    # THEN one request asked for that window in ascending order, without $skip
    assert len(ids(pages)) == 1
    [request] = api.requests
    assert request.method == "GET"
    assert request.url.path == "/v1.0/security/alerts_v2"
    assert dict(request.url.params) == {
        "$filter": "lastUpdateDateTime ge 2025-06-17T08:00:00.250000Z",
        "$orderby": "lastUpdateDateTime asc",
        "$top": "500",
    }
    assert request.headers["Authorization"] == "Bearer token-1"
    assert request.headers["Prefer"] == "include-unknown-enum-members"
    assert client.requests_made == 1


def test_a_bounded_read_adds_an_exclusive_upper_bound_in_utc() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"value": []})

    until = datetime(2025, 6, 17, 12, 0, tzinfo=UTC).astimezone()
    list(client_for(handler).alerts_updated(SINCE, until))

    assert seen[0].url.params["$filter"] == (
        "lastUpdateDateTime ge 2025-06-17T08:00:00.250000Z"
        " and lastUpdateDateTime lt 2025-06-17T12:00:00.000000Z"
    )


@pytest.mark.parametrize("page_size", [0, 1001])
def test_page_size_must_fit_graphs_top_limit(page_size: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        client_for(FakeGraphApi([]), page_size=page_size)


# --- nextLink paging and the $skip ceiling ---------------------------------------------------


def test_next_links_are_followed_to_the_last_page() -> None:
    # GIVEN seven alerts and pages of three
    alerts = alerts_at(7)
    api = FakeGraphApi(alerts)
    # WHEN every page is read
    pages = list(client_for(api, page_size=3).alerts_updated(SINCE))
    # THEN the server's links were followed verbatim until it stopped sending one
    assert [len(p) for p in pages] == [3, 3, 1]
    assert ids(pages) == [a["id"] for a in alerts]
    assert api.skips() == [None, "3", "6"]


def test_a_next_link_is_followed_as_given() -> None:
    link = f"{ALERTS}?$skiptoken=eyJwYWdlIjoyfQ%3D%3D"
    answers = [
        httpx.Response(200, json={"value": alerts_at(1), "@odata.nextLink": link}),
        httpx.Response(200, json={"value": []}),
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    list(client_for(handler).alerts_updated(SINCE))

    assert str(seen[1].url) == link
    assert seen[1].headers["Prefer"] == "include-unknown-enum-members"


def test_past_the_skip_ceiling_the_query_restarts_from_the_newest_update_seen() -> None:
    # GIVEN 12 alerts, pages of 2, and a ceiling that allows $skip up to 4 (Graph: 5000)
    alerts = alerts_at(12)
    api = FakeGraphApi(alerts)
    client = client_for(api, page_size=2, max_skip=4)
    # WHEN every page is read
    pages = list(client.alerts_updated(SINCE))
    # THEN $skip never passed the ceiling: after $skip=4 the filter moved to the newest time seen
    assert api.skips() == [None, "2", "4", None, "2", "4", None]
    assert all(int(s) <= 4 for s in api.skips() if s is not None)
    newest_of_first_window = cursor_of(alerts[5]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert api.filters()[3] == f"lastUpdateDateTime ge {newest_of_first_window}"
    assert client.restarts == 2
    # AND every alert arrived in ascending order; only the restart rows come twice
    received = ids(pages)
    assert set(received) == {a["id"] for a in alerts}
    assert len(received) == len(alerts) + client.restarts
    times = [cursor_of(row) for page in pages for row in page]
    assert times == sorted(times)


def test_a_restart_that_cannot_move_forward_is_an_error() -> None:
    # GIVEN more alerts with one identical update time than the ceiling lets us page through
    same_time = alerts_at(8, step=timedelta(0))
    client = client_for(FakeGraphApi(same_time), page_size=2, max_skip=2)
    # WHEN they are read THEN the client refuses to loop forever
    with pytest.raises(VendorApiError, match="share one lastUpdateDateTime"):
        list(client.alerts_updated(SINCE))


def test_a_next_link_to_another_host_is_refused_before_the_token_leaves() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"value": [], "@odata.nextLink": "https://evil.example/v1.0/x"})

    with pytest.raises(VendorApiError, match="outside the API host"):
        list(client_for(handler).alerts_updated(SINCE))

    assert [r.url.host for r in seen] == ["graph.example.test"]


# --- errors, retries, tokens -----------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds() -> None:
    # GIVEN Graph throttles the first call for 2 seconds
    answers = [
        httpx.Response(
            429,
            headers={"Retry-After": "2"},
            json={"error": {"code": "TooManyRequests", "message": "Too many requests."}},
        ),
        httpx.Response(200, json={"value": alerts_at(1)}),
    ]
    waits: list[float] = []
    client = client_for(lambda _request: answers.pop(0), sleep=waits.append)
    # WHEN the page is read
    pages = list(client.alerts_updated(SINCE))
    # THEN the client slept exactly what Graph asked for, then got the page
    assert waits == [2.0]
    assert len(ids(pages)) == 1


def test_401_refreshes_the_token_once_and_retries() -> None:
    tokens = StaticTokens()
    answers = [
        httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
        httpx.Response(200, json={"value": alerts_at(1)}),
    ]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return answers.pop(0)

    list(client_for(handler, tokens=tokens).alerts_updated(SINCE))

    assert tokens.invalidated == 1
    assert seen == ["Bearer token-1", "Bearer token-2"]


def test_vendor_errors_name_status_and_code_only() -> None:
    forbidden = httpx.Response(
        403, json={"error": {"code": "Forbidden", "message": "Missing role SecurityAlert.Read.All for jdoe"}}
    )

    with pytest.raises(VendorApiError) as caught:
        list(client_for(lambda _request: forbidden).alerts_updated(SINCE))

    assert caught.value.status == 403
    assert str(caught.value) == "HTTP 403 Forbidden"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={"value": {"id": "da1"}}),
        httpx.Response(200, json={"@odata.context": "x"}),
        httpx.Response(200, json=[{"id": "da1"}]),
        httpx.Response(200, content=b"<html>gateway</html>"),
    ],
)
def test_a_body_without_a_value_list_is_a_vendor_api_error(response: httpx.Response) -> None:
    with pytest.raises(VendorApiError, match="Graph alerts_v2"):
        list(client_for(lambda _request: response).alerts_updated(SINCE))


def test_malformed_rows_are_passed_on_and_do_not_break_the_restart_cursor() -> None:
    # GIVEN a page holding a row without an update time next to good ones
    alerts = alerts_at(5)
    alerts.insert(1, {"id": "broken", "lastUpdateDateTime": None})
    pages = list(client_for(FakeGraphApiWithRaw(alerts), page_size=2, max_skip=2).alerts_updated(SINCE))

    assert "broken" in ids(pages)
    assert {a["id"] for a in alerts} <= set(ids(pages))


class FakeGraphApiWithRaw(FakeGraphApi):
    """Serves rows in the given order (a malformed row has no time to sort or filter on)."""

    def __init__(self, alerts: list[dict[str, Any]]) -> None:
        self.alerts = alerts
        self.requests = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        params = request.url.params
        top, skip = int(params["$top"]), int(params.get("$skip", "0"))
        since = datetime.fromisoformat(params["$filter"].split(" ")[2])
        rows = [a for a in self.alerts if a["lastUpdateDateTime"] is None or cursor_of(a) >= since]
        body: dict[str, Any] = {"value": rows[skip : skip + top]}
        if skip + top < len(rows):
            body["@odata.nextLink"] = f"{ALERTS}?{urlencode({**params, '$skip': skip + top})}"
        return httpx.Response(200, json=body)


# --- cursor, tokens and the feed -------------------------------------------------------------


def test_cursor_of_is_the_last_update_time() -> None:
    alert = make_alert(0, SINCE)

    assert cursor_of(alert) == SINCE


@pytest.mark.parametrize("record", [{"id": "x"}, {"lastUpdateDateTime": "soon"}, ["x"]])
def test_cursor_of_a_record_without_an_update_time_is_malformed(record: Any) -> None:
    with pytest.raises(MalformedRecordError):
        cursor_of(record)


def test_graph_tokens_ask_entra_for_the_graph_scope() -> None:
    seen: list[httpx.Request] = []

    def entra(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"token_type": "Bearer", "expires_in": 3599, "access_token": "t0k"})

    http = httpx.Client(transport=httpx.MockTransport(entra), trust_env=False)
    tokens = graph_tokens(http, "https://login.example.test", "tenant-1", "app-1", "s3cret")

    assert tokens.token() == "t0k"
    assert tokens.token() == "t0k"  # cached for the client's lifetime
    [request] = seen
    assert request.url.path == "/tenant-1/oauth2/v2.0/token"
    assert b"scope=https%3A%2F%2Fgraph.microsoft.com%2F.default" in request.content
    assert SCOPE == "https://graph.microsoft.com/.default"


def test_feed_is_ordered_and_delegates_to_client_and_normalizer() -> None:
    alerts = alerts_at(3)
    feed = GraphFeed(client_for(FakeGraphApi(alerts), page_size=2))

    pages = list(feed.pages(SINCE, None))

    assert (feed.source, feed.ordered) == ("graph", True)
    assert ids(pages) == [a["id"] for a in alerts]
    assert feed.cursor_of(alerts[2]) == cursor_of(alerts[2])
    event = feed.normalize(alerts[0])
    assert (event.source, event.vendor_id, event.device.device_id) == ("graph", alerts[0]["id"], DEVICE)
