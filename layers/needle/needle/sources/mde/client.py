"""MDE API client: incremental `GET /api/alerts` with `$filter`/`$top`/`$skip` paging."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from needle.model.event import parse_time
from needle.sources.http import RetryPolicy, TokenProvider, VendorApiError, send

SCOPE = "https://api.securitycenter.microsoft.com/.default"
USER_AGENT = "MdatpPartner-Needle-Needle/0.1"


@dataclass
class MdeClient:
    http: httpx.Client
    base_url: str
    tokens: TokenProvider
    page_size: int = 1000
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] | None = None
    requests_made: int = 0

    def alerts_updated(
        self, since: datetime, until: datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of alerts with `since <= lastUpdateTime < until`, evidence expanded.

        The API documents no ordering, so a window is read to its end before the caller may
        checkpoint. `@odata.nextLink` is followed when present, else `$skip` advances.
        """
        condition = f"lastUpdateTime ge {_odata_time(since)}"
        if until is not None:
            condition += f" and lastUpdateTime lt {_odata_time(until)}"
        params: dict[str, str | int] = {
            "$filter": condition,
            "$top": self.page_size,
            "$expand": "evidence",
        }
        url: str | None = f"{self.base_url.rstrip('/')}/api/alerts"
        skip = 0
        while url is not None:
            query = None if "?" in url else {**params, "$skip": skip}
            page_url = url
            response = self._get(page_url, query)
            body = response.json()
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                raise VendorApiError("MDE /api/alerts answered without a `value` list")
            rows: list[dict[str, Any]] = body["value"]
            yield rows
            next_link = body.get("@odata.nextLink")
            if isinstance(next_link, str) and next_link:
                url = next_link
            elif len(rows) < self.page_size:
                url = None
            else:
                skip += len(rows)

    def _get(self, url: str, query: dict[str, str | int] | None) -> httpx.Response:
        def build(token: str) -> httpx.Request:
            return self.http.build_request(
                "GET",
                url,
                params=query,
                headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            )

        self.requests_made += 1
        if self.sleep is None:
            return send(self.http, build, self.tokens, policy=self.policy)
        return send(self.http, build, self.tokens, policy=self.policy, sleep=self.sleep)


def _odata_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def cursor_of(alert: dict[str, Any]) -> datetime:
    """The vendor update time that drives incremental polling."""
    return parse_time(alert.get("lastUpdateTime") or alert.get("alertCreationTime"))
