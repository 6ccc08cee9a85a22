"""needle.sources.mde.client: `$filter`/`$top`/`$skip`/`$expand` paging and `@odata.nextLink`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from needle.sources.http import RetryPolicy, VendorApiError
from needle.sources.mde.client import MdeClient, cursor_of

pytestmark = pytest.mark.unit

API = "https://api.securitycenter.test"
SINCE = datetime(2025, 5, 12, 14, 0, 0, tzinfo=UTC)
CONTEXT = "https://api.securitycenter.microsoft.com/api/$metadata#Alerts"


class StaticTokens:
    def __init__(self) -> None:
        self.invalidated = 0

    def token(self) -> str:
        return "token-1"

    def invalidate(self) -> None:
        self.invalidated += 1


class FakeMdeApi:
    """`GET /api/alerts` over a fixed alert list, paged with `$top`/`$skip` like the real API."""

    def __init__(self, alerts: list[dict[str, Any]]) -> None:
        self.alerts = alerts
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        top = int(request.url.params["$top"])
        skip = int(request.url.params["$skip"])
        return httpx.Response(200, json={"@odata.context": CONTEXT, "value": self.alerts[skip : skip + top]})

    def skips(self) -> list[str]:
        return [r.url.params["$skip"] for r in self.requests]


def client_for(handler: Callable[[httpx.Request], httpx.Response], page_size: int) -> MdeClient:
    http = httpx.Client(transport=httpx.MockTransport(handler), trust_env=False)
    return MdeClient(http, API + "/", StaticTokens(), page_size=page_size, policy=RetryPolicy(attempts=2))


@pytest.fixture
def alerts(mde_alert: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    template = mde_alert("alert_credential_dump")
    return [{**template, "id": f"da63877190341552771{i}_-58331907{i}"} for i in range(5)]


def test_first_request_filters_on_last_update_time_and_expands_evidence(alerts: list[dict[str, Any]]) -> None:
    # GIVEN an API holding fewer alerts than a page
    api = FakeMdeApi(alerts[:1])
    client = client_for(api, page_size=100)
    # WHEN alerts updated since a time are read
    pages = list(client.alerts_updated(SINCE))
    # THEN one request asked for exactly that window with evidence expanded
    assert pages == [alerts[:1]]
    [request] = api.requests
    assert request.method == "GET"
    assert request.url.path == "/api/alerts"
    assert dict(request.url.params) == {
        "$filter": "lastUpdateTime ge 2025-05-12T14:00:00.000000Z",
        "$top": "100",
        "$expand": "evidence",
        "$skip": "0",
    }
    assert request.headers["Authorization"] == "Bearer token-1"
    assert request.headers["User-Agent"].startswith("MdatpPartner-")
    assert client.requests_made == 1


def test_filter_keeps_microseconds_of_the_cursor() -> None:
    api = FakeMdeApi([])

    list(client_for(api, page_size=10).alerts_updated(SINCE.replace(microsecond=441500)))

    assert api.requests[0].url.params["$filter"] == "lastUpdateTime ge 2025-05-12T14:00:00.441500Z"


def test_skip_advances_by_page_until_a_short_page(alerts: list[dict[str, Any]]) -> None:
    # GIVEN five alerts and a page size of two
    api = FakeMdeApi(alerts)
    # WHEN every page is read
    pages = list(client_for(api, page_size=2).alerts_updated(SINCE))
    # THEN pages of 2, 2, 1 came from $skip 0, 2, 4, and the short page ended the read
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [a["id"] for p in pages for a in p] == [a["id"] for a in alerts]
    assert api.skips() == ["0", "2", "4"]
    assert {r.url.params["$top"] for r in api.requests} == {"2"}


def test_an_exact_multiple_of_the_page_size_ends_on_an_empty_page(alerts: list[dict[str, Any]]) -> None:
    api = FakeMdeApi(alerts[:4])

    pages = list(client_for(api, page_size=2).alerts_updated(SINCE))

    assert [len(p) for p in pages] == [2, 2, 0]
    assert api.skips() == ["0", "2", "4"]


def test_next_link_is_followed_as_given(alerts: list[dict[str, Any]]) -> None:
    # GIVEN an API that pages with @odata.nextLink (a full first page, a short second one)
    next_link = f"{API}/api/alerts?$skiptoken=eyJwYWdlIjoyfQ%3D%3D&$expand=evidence"
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(200, json={"value": alerts[:2], "@odata.nextLink": next_link})
        return httpx.Response(200, json={"value": alerts[2:3]})

    # WHEN every page is read
    pages = list(client_for(handler, page_size=2).alerts_updated(SINCE))
    # THEN the second request is the link verbatim, with no $skip or $filter of ours added
    assert [len(p) for p in pages] == [2, 1]
    assert str(seen[1].url) == next_link
    assert "$skip" not in seen[1].url.params
    assert "$filter" not in seen[1].url.params


def test_a_short_page_with_a_next_link_still_follows_it(alerts: list[dict[str, Any]]) -> None:
    next_link = f"{API}/api/alerts?$skiptoken=abc"
    answers = [
        httpx.Response(200, json={"value": alerts[:1], "@odata.nextLink": next_link}),
        httpx.Response(200, json={"value": alerts[1:2]}),
    ]

    pages = list(client_for(lambda _request: answers.pop(0), page_size=50).alerts_updated(SINCE))

    assert [p[0]["id"] for p in pages] == [alerts[0]["id"], alerts[1]["id"]]
    assert answers == []


@pytest.mark.parametrize(
    "body",
    [
        {"value": {"id": "da1"}},
        {"value": None},
        {"@odata.context": CONTEXT},
        [{"id": "da1"}],
        {"error": {"code": "InternalServerError"}},
    ],
)
def test_a_body_without_a_value_list_is_a_vendor_api_error(body: Any) -> None:
    client = client_for(lambda _request: httpx.Response(200, json=body), page_size=10)

    with pytest.raises(VendorApiError, match="value"):
        list(client.alerts_updated(SINCE))


def test_vendor_errors_surface_from_paging() -> None:
    forbidden = httpx.Response(
        403, json={"error": {"code": "Forbidden", "message": "Missing Alert.Read.All"}}
    )
    client = client_for(lambda _request: forbidden, page_size=10)

    with pytest.raises(VendorApiError) as caught:
        list(client.alerts_updated(SINCE))

    assert caught.value.status == 403


def test_cursor_of_prefers_last_update_time(alerts: list[dict[str, Any]]) -> None:
    alert = alerts[0]
    assert cursor_of(alert) == datetime(2025, 5, 12, 14, 9, 30, 441500, tzinfo=UTC)

    del alert["lastUpdateTime"]
    assert cursor_of(alert) == datetime(2025, 5, 12, 14, 3, 51, 884120, tzinfo=UTC)


def test_filter_converts_an_offset_cursor_to_utc() -> None:
    api = FakeMdeApi([])
    since = SINCE.astimezone(timezone(timedelta(hours=2)))  # 16:00+02:00 == 14:00Z

    list(client_for(api, page_size=10).alerts_updated(since))

    assert api.requests[0].url.params["$filter"] == "lastUpdateTime ge 2025-05-12T14:00:00.000000Z"


def test_a_bounded_window_adds_an_exclusive_upper_bound() -> None:
    # GIVEN a closed window [14:00Z, 20:00Z) with the upper bound given in another offset
    api = FakeMdeApi([])
    until = datetime(2025, 5, 12, 15, 0, tzinfo=timezone(timedelta(hours=-5)))
    # WHEN it is read
    list(client_for(api, page_size=10).alerts_updated(SINCE, until))
    # THEN both bounds are in the filter, in UTC
    assert api.requests[0].url.params["$filter"] == (
        "lastUpdateTime ge 2025-05-12T14:00:00.000000Z and lastUpdateTime lt 2025-05-12T20:00:00.000000Z"
    )
