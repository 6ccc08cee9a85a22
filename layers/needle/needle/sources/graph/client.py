"""Graph client: incremental `GET /v1.0/security/alerts_v2`, ascending by `lastUpdateDateTime`.

Paging follows `@odata.nextLink`. Graph refuses `$top + $skip > 6000` (and caps `$top` at 1000),
so a read never follows a link whose `$skip` passes `max_skip` (5000): it restarts the query
from the newest `lastUpdateDateTime` seen so far instead, which keeps the ascending order the
poller checkpoints on. The restart uses `ge`, so the rows at that instant are read twice; the
poller drops repeated (id, lastUpdateDateTime) versions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from needle.model.event import MalformedRecordError, parse_time
from needle.sources.http import (
    EntraClientCredentials,
    RetryPolicy,
    TokenProvider,
    VendorApiError,
    retry_after_seconds,
    send,
)

SCOPE = "https://graph.microsoft.com/.default"
ALERTS_PATH = "/v1.0/security/alerts_v2"
MAX_PAGE_SIZE = 1000
MAX_SKIP = 5000
# Without it Graph hides enum members added after `unknownFutureValue` (e.g. newer services).
PREFER = "include-unknown-enum-members"
# Microsoft's ISV decoration, which its throttling diagnostics key on.
USER_AGENT = "ISV|Needle|Needle/0.1"


def graph_tokens(
    http: httpx.Client, login_base_url: str, tenant_id: str, client_id: str, client_secret: str
) -> EntraClientCredentials:
    """Entra ID client-credentials tokens for Graph (`https://graph.microsoft.com/.default`)."""
    return EntraClientCredentials(
        http=http,
        login_base_url=login_base_url,
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret=client_secret,
        scope=SCOPE,
    )


@dataclass
class GraphClient:
    """Reads alerts_v2 pages. `base_url` is the Graph host (`https://graph.microsoft.com`)."""

    http: httpx.Client
    base_url: str
    tokens: TokenProvider
    page_size: int = MAX_PAGE_SIZE
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] | None = None
    max_skip: int = MAX_SKIP
    requests_made: int = 0
    restarts: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if self.max_skip < 0:
            raise ValueError("max_skip must not be negative")
        self._origin = _origin(httpx.URL(self.base_url))

    def alerts_updated(
        self, since: datetime, until: datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of alerts with `since <= lastUpdateDateTime` (`< until` when given), ascending.

        Raises VendorApiError when Graph refuses, or when more rows than `max_skip + page_size`
        share one `lastUpdateDateTime` (no filter could then move past them without `$skip`).
        """
        start = since
        query: dict[str, str | int] | None
        url, query = self._first_page(start, until)
        newest: datetime | None = None
        while True:
            rows, next_link = self._page(url, query)
            for row in rows:
                updated = _updated(row)
                if updated is not None and (newest is None or updated > newest):
                    newest = updated
            yield rows
            if next_link is None:
                return
            skip = _skip_of(next_link)
            if skip is not None and skip > self.max_skip:
                if newest is None or newest <= start:
                    raise VendorApiError(
                        f"more than {self.max_skip + self.page_size} alerts share one lastUpdateDateTime"
                    )
                start = newest
                url, query = self._first_page(start, until)
                self.restarts += 1
                continue
            if _origin(httpx.URL(next_link)) != self._origin:
                # The link would carry our bearer token to another host.
                raise VendorApiError("Graph @odata.nextLink points outside the API host")
            url, query = next_link, None

    def _first_page(self, start: datetime, until: datetime | None) -> tuple[str, dict[str, str | int]]:
        condition = f"lastUpdateDateTime ge {_odata_time(start)}"
        if until is not None:
            condition += f" and lastUpdateDateTime lt {_odata_time(until)}"
        query: dict[str, str | int] = {
            "$filter": condition,
            "$orderby": "lastUpdateDateTime asc",
            "$top": self.page_size,
        }
        return f"{self.base_url.rstrip('/')}{ALERTS_PATH}", query

    def _page(self, url: str, query: dict[str, str | int] | None) -> tuple[list[dict[str, Any]], str | None]:
        response = self._get(url, query)
        try:
            body = response.json()
        except ValueError as exc:
            raise VendorApiError("Graph alerts_v2 answered with a body that is not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise VendorApiError("Graph alerts_v2 answered without a `value` list")
        link = body.get("@odata.nextLink")
        rows: list[dict[str, Any]] = body["value"]
        return rows, link if isinstance(link, str) and link else None

    def _get(self, url: str, query: dict[str, str | int] | None) -> httpx.Response:
        def build(token: str) -> httpx.Request:
            return self.http.build_request(
                "GET",
                url,
                params=query,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Prefer": PREFER,
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                },
            )

        self.requests_made += 1
        if self.sleep is None:
            return send(self.http, build, self.tokens, policy=self.policy, retry_signal=retry_after_seconds)
        return send(
            self.http,
            build,
            self.tokens,
            policy=self.policy,
            sleep=self.sleep,
            retry_signal=retry_after_seconds,
        )


def cursor_of(alert: dict[str, Any]) -> datetime:
    """The vendor update time that drives incremental polling (MalformedRecordError without one)."""
    if not isinstance(alert, dict):
        raise MalformedRecordError("alert is not a JSON object")
    return parse_time(alert.get("lastUpdateDateTime"))


def _updated(row: Any) -> datetime | None:
    try:
        return cursor_of(row)
    except MalformedRecordError:
        return None


def _odata_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _skip_of(link: str) -> int | None:
    value = httpx.URL(link).params.get("$skip")
    return int(value) if value is not None and value.isdigit() else None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port
