"""SentinelOne Management API client: `GET /web/api/v2.1/threats` by `updatedAt` with cursor paging."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from needle.sources.http import RetryPolicy, TokenProvider, VendorApiError, send
from needle.sources.sentinelone.normalize import cursor_of

API_PREFIX = "/web/api/v2.1"
MAX_LIMIT = 1000

__all__ = ["MAX_LIMIT", "SentinelOneClient", "StaticApiToken", "cursor_of", "s1_time"]


class StaticApiToken:
    """A SentinelOne API token: static, created in the console, valid until it expires or is revoked.

    There is nothing to refresh, so `invalidate()` (called by `send` on a 401) makes the next
    `token()` raise a VendorApiError instead of replaying a token the console just refused.
    The flag clears once raised, so the next poll run tries again (a replaced secret, or a 401
    from a flaky gateway, then recovers without a restart).
    """

    __slots__ = ("_rejected", "_value")

    def __init__(self, value: str) -> None:
        if not value or not value.strip():
            raise ValueError("the SentinelOne API token is empty")
        self._value = value.strip()
        self._rejected = False

    def token(self) -> str:
        if self._rejected:
            self._rejected = False
            raise VendorApiError(
                "SentinelOne refused the API token (HTTP 401): it is invalid, expired or revoked; "
                "a static token cannot be refreshed, generate a new one in the console",
                401,
            )
        return self._value

    def invalidate(self) -> None:
        self._rejected = True

    def __repr__(self) -> str:
        return "StaticApiToken(<redacted>)"


@dataclass
class SentinelOneClient:
    """Reads threats from one SentinelOne console; `http` is injected and outlives the client."""

    http: httpx.Client
    base_url: str
    tokens: TokenProvider
    page_size: int = MAX_LIMIT
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] | None = None
    requests_made: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= MAX_LIMIT:
            raise ValueError(f"page_size must be 1..{MAX_LIMIT} (the API's `limit` range)")
        self.base_url = self.base_url.rstrip("/")

    def threats_updated(
        self, since: datetime, until: datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of threats with `since <= threatInfo.updatedAt (< until)`, oldest update first.

        The server sorts by `updatedAt` ascending, so every page may be checkpointed as soon as
        it is stored. `pagination.nextCursor` is followed until it is null.
        """
        params: dict[str, str | int] = {
            "updatedAt__gte": s1_time(since),
            "sortBy": "updatedAt",
            "sortOrder": "asc",
            "limit": self.page_size,
        }
        if until is not None:
            params["updatedAt__lt"] = s1_time(until)
        url = f"{self.base_url}{API_PREFIX}/threats"
        cursor: str | None = None
        while True:
            query = params if cursor is None else {**params, "cursor": cursor}
            body = self._request("GET", url, query=query).json()
            rows = body.get("data") if isinstance(body, dict) else None
            if not isinstance(rows, list):
                raise VendorApiError("SentinelOne /threats answered without a `data` list")
            yield rows
            pagination = body.get("pagination")
            following = pagination.get("nextCursor") if isinstance(pagination, dict) else None
            if not isinstance(following, str) or not following or not rows:
                return
            if following == cursor:
                # A cursor that does not move would loop forever on the same page.
                raise VendorApiError("SentinelOne /threats returned the same nextCursor twice")
            cursor = following

    def disconnect(self, agent_ids: list[str]) -> int:
        """Network-isolate agents (`POST /agents/actions/disconnect`); returns how many were affected."""
        return self._agent_action("disconnect", agent_ids)

    def connect(self, agent_ids: list[str]) -> int:
        """Lift network isolation (`POST /agents/actions/connect`); returns how many were affected."""
        return self._agent_action("connect", agent_ids)

    def _agent_action(self, action: str, agent_ids: list[str]) -> int:
        if not agent_ids:
            # An empty filter would select every agent in scope: never send one.
            raise ValueError("name at least one agent id")
        url = f"{self.base_url}{API_PREFIX}/agents/actions/{action}"
        body = self._request("POST", url, json={"filter": {"ids": list(agent_ids)}, "data": {}}).json()
        data = body.get("data") if isinstance(body, dict) else None
        affected = data.get("affected") if isinstance(data, dict) else None
        if not isinstance(affected, int):
            raise VendorApiError(f"SentinelOne agents/actions/{action} answered without `data.affected`")
        return affected

    def _request(
        self,
        method: str,
        url: str,
        *,
        query: dict[str, str | int] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        def build(token: str) -> httpx.Request:
            return self.http.build_request(
                method,
                url,
                params=query,
                json=json,
                headers={"Authorization": f"ApiToken {token}", "Accept": "application/json"},
            )

        self.requests_made += 1
        # SentinelOne's 429 carries `Retry-After` in seconds: the default retry signal reads it.
        if self.sleep is None:
            return send(self.http, build, self.tokens, policy=self.policy)
        return send(self.http, build, self.tokens, policy=self.policy, sleep=self.sleep)


def s1_time(moment: datetime) -> str:
    """A filter timestamp as the API documents it: UTC, microseconds, `Z`."""
    if moment.tzinfo is None:
        raise ValueError("filter times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
