"""Local SentinelOne Management API simulator: API tokens, `/web/api/v2.1/threats`, disconnect/connect.

Fidelity notes (reference §3, §5): `Authorization: ApiToken <t>`; the `/threats` filters, sort,
`limit` 1-1000, `skip` 0-1000 and an opaque base64 `cursor`; the `{"data","pagination"}`
envelope; `{"errors":[{code,title,detail}]}` errors; 429 with `Retry-After` from a per-token
bucket (10 req/s, burst 50, as SentinelOne's published table says for `/threats`).
Unverified choices [U]: error codes other than 4010010 follow `<status>0010`; validation errors
name the parameter in `detail`; the default `limit` is 10 and the default sort `id` ascending;
`skipCount=true` answers `totalItems: null`; unknown query parameters are refused with a 400
so a client typo cannot silently widen a query.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from needle_local.simulators.base import (
    AlertVersions,
    HttpSimulator,
    Reply,
    ReplyError,
    Request,
    Route,
    require_aware,
    utc_now,
)

API = "/web/api/v2.1"
MAX_LIMIT = 1000
MAX_SKIP = 1000
DEFAULT_LIMIT = 10
DEFAULT_TOKEN = "sim-s1-api-token-5b7e0c2d9a"
THREATS_RATE = (10.0, 50)  # sustained req/s, burst: `/threats` in SentinelOne's rate-limit table

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_FIELDS = ("updatedAt", "createdAt")
_TIME_OPS: dict[str, Callable[[int, int], bool]] = {
    "gte": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}
# List filters: query parameter -> (object, field); each also has an exclusion form `<name>Nin`.
_LIST_FILTERS: dict[str, tuple[str | None, str]] = {
    "ids": (None, "id"),
    "agentIds": ("agentRealtimeInfo", "agentId"),
    "accountIds": ("agentRealtimeInfo", "accountId"),
    "siteIds": ("agentRealtimeInfo", "siteId"),
    "groupIds": ("agentRealtimeInfo", "groupId"),
    "osTypes": ("agentRealtimeInfo", "agentOsType"),
    "incidentStatuses": ("threatInfo", "incidentStatus"),
    "analystVerdicts": ("threatInfo", "analystVerdict"),
    "confidenceLevels": ("threatInfo", "confidenceLevel"),
    "mitigationStatuses": ("threatInfo", "mitigationStatus"),
    "classifications": ("threatInfo", "classification"),
    "storylines": ("threatInfo", "storyline"),
    "contentHashes": ("threatInfo", "sha1"),
    "collectionIds": ("threatInfo", "collectionId"),
}
# sortBy enum (the v2.1 swagger) -> where the value lives; None = time or id, handled apart.
_SORT_FIELDS: dict[str, tuple[str | None, str]] = {
    "id": (None, "id"),
    "createdAt": (None, "createdAt"),
    "createdDate": (None, "createdAt"),
    "updatedAt": (None, "updatedAt"),
    "mitigationStatus": ("threatInfo", "mitigationStatus"),
    "fileDisplayName": ("threatInfo", "threatName"),
    "agentVersion": ("agentRealtimeInfo", "agentVersion"),
    "agentMachineType": ("agentRealtimeInfo", "agentMachineType"),
    "siteId": ("agentRealtimeInfo", "siteId"),
    "siteName": ("agentRealtimeInfo", "siteName"),
    "agentComputerName": ("agentRealtimeInfo", "agentComputerName"),
    "filePath": ("threatInfo", "filePath"),
    "contentHash": ("threatInfo", "sha1"),
    "collectionId": ("threatInfo", "collectionId"),
    "classification": ("threatInfo", "classification"),
    "cloudAccount": ("agentDetectionInfo", "cloudAccount"),
    "cloudImage": ("agentDetectionInfo", "cloudImage"),
    "cloudInstanceId": ("agentDetectionInfo", "cloudInstanceId"),
    "cloudInstanceSize": ("agentDetectionInfo", "cloudInstanceSize"),
    "cloudLocation": ("agentDetectionInfo", "cloudLocation"),
    "cloudNetwork": ("agentDetectionInfo", "cloudNetwork"),
}
_PLAIN_PARAMS = frozenset(
    {"limit", "skip", "cursor", "sortBy", "sortOrder", "countOnly", "skipCount", "tenant"}
)
_KNOWN_PARAMS = (
    _PLAIN_PARAMS
    | {f"{field}__{op}" for field in _TIME_FIELDS for op in _TIME_OPS}
    | set(_LIST_FILTERS)
    | {f"{name}Nin" for name in _LIST_FILTERS if name != "ids"}
)

SortKey = tuple[Any, str]


def s1_time(moment: datetime) -> str:
    """`moment` as SentinelOne writes it: UTC, six fractional digits, `Z`."""
    require_aware(moment, "moment")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def parse_s1_time(text: Any) -> datetime | None:
    """An ISO-8601 timestamp (`Z` or offset, any number of fractional digits), or None."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    head, dot, rest = value.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}" if digits else value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    return moment.astimezone(UTC)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _id_key(value: str) -> str:
    # Threat ids are 19-digit numbers: pad so string order is numeric order.
    return value.rjust(24, "0") if value.isdigit() else f"~{value}"


def s1_error(status: int, title: str | None = None, detail: Any = None, code: int | None = None) -> Reply:
    """A SentinelOne error reply: `{"errors":[{"code","detail","title"}]}`."""
    body = {
        "errors": [
            {
                "code": code if code is not None else status * 10000 + 10,
                "detail": detail,
                "title": title or HTTPStatus(status).phrase,
            }
        ]
    }
    return Reply.json(status, body)


def _invalid(param: str, message: str) -> ReplyError:
    return ReplyError(s1_error(400, "Validation Error", {param: [message]}, code=4000010))


@dataclass
class _Row:
    """One listed record with what filtering and sorting need, computed once per version."""

    payload: Any
    threat_id: str
    updated_us: int
    created_us: int

    def field(self, section: str | None, name: str) -> Any:
        if not isinstance(self.payload, dict):
            return None
        holder = self.payload if section is None else self.payload.get(section)
        return holder.get(name) if isinstance(holder, dict) else None

    def sort_key(self, sort_by: str) -> SortKey:
        id_key = _id_key(self.threat_id)
        if sort_by == "id":
            return ("", id_key)
        if sort_by == "updatedAt":
            return (self.updated_us, id_key)
        if sort_by in ("createdAt", "createdDate"):
            return (self.created_us, id_key)
        section, name = _SORT_FIELDS[sort_by]
        value = self.field(section, name)
        return ("" if value is None else str(value), id_key)


@dataclass(frozen=True)
class _Query:
    limit: int
    skip: int
    cursor: SortKey | None
    sort_by: str
    descending: bool
    count_only: bool
    skip_count: bool
    times: tuple[tuple[str, str, int], ...]
    lists: tuple[tuple[str | None, str, frozenset[str], bool], ...]

    def matches(self, row: _Row) -> bool:
        for field, op, bound in self.times:
            value = row.updated_us if field == "updatedAt" else row.created_us
            if not _TIME_OPS[op](value, bound):
                return False
        for section, name, wanted, exclude in self.lists:
            value = row.field(section, name)
            found = value is not None and str(value) in wanted
            if found == exclude:
                return False
        return True


class _Bucket:
    """A token bucket on wall time: SentinelOne limits per token and path, not per scenario."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> int | None:
        """None when the call may proceed, else the whole seconds to wait."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - self.tokens) / self.rate))


class SentinelOneSimulator(HttpSimulator):
    """A SentinelOne console on 127.0.0.1: threats appear per the scenario clock.

    >>> with SentinelOneSimulator(api_token="t") as s1:  # doctest: +SKIP
    ...     s1.add_alert(threat)
    """

    name = "sentinelone-simulator"

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = utc_now,
        api_token: str = DEFAULT_TOKEN,
        rate_limit: tuple[float, int] | None = THREATS_RATE,
    ) -> None:
        super().__init__(clock)
        if not api_token:
            raise ValueError("api_token must not be empty")
        self._token = api_token
        self.versions = AlertVersions()
        self._rows: dict[int, _Row] = {}
        self._raw: list[tuple[datetime, _Row]] = []
        self._agents: set[str] = set()
        self._rate_limit = rate_limit
        self._buckets: dict[str, _Bucket] = {}
        self.network_status: dict[str, str] = {}
        self.agent_actions: list[tuple[str, str, datetime]] = []

    # -- the vendor's shape ------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("GET", rf"{API}/threats/?", f"GET {API}/threats", self._list_threats, listing=True),
            Route(
                "POST",
                rf"{API}/agents/actions/(?P<action>disconnect)",
                f"POST {API}/agents/actions/disconnect",
                self._agent_action,
            ),
            Route(
                "POST",
                rf"{API}/agents/actions/(?P<action>connect)",
                f"POST {API}/agents/actions/connect",
                self._agent_action,
            ),
        ]

    def authenticated(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "ApiToken" and secrets.compare_digest(token.strip().encode(), self._token.encode())

    def unauthorized(self) -> Reply:
        return s1_error(401, "Authentication Failed", code=4010010)

    def throttled(self, retry_after_seconds: int) -> Reply:
        reply = s1_error(429, "Too Many Requests", "Rate limit exceeded", code=4290010)
        return Reply(reply.status, reply.body, reply.content_type, {"Retry-After": str(retry_after_seconds)})

    def failed(self, status: int) -> Reply:
        return s1_error(status)

    def not_found(self, request: Request) -> Reply:
        return s1_error(404, "Not Found", f"{request.method} {request.path[:100]} is not an API path")

    # -- tokens ------------------------------------------------------------------------------
    @property
    def api_token(self) -> str:
        with self.lock:
            return self._token

    def set_token(self, token: str) -> None:
        """Make `token` the only valid API token (a token generated in the console)."""
        if not token:
            raise ValueError("token must not be empty")
        with self.lock:
            self._token = token

    def expire_tokens(self) -> None:
        """Rotate the API token: the old one answers 401 from now on (read the new one from
        `api_token`, or choose it with `set_token`)."""
        with self.lock:
            self._token = f"sim-s1-{secrets.token_urlsafe(24)}"

    # -- scenario control --------------------------------------------------------------------
    def add_alert(self, alert: dict[str, Any], visible_at: datetime | None = None) -> None:
        """Serve threat `alert` once clock() >= visible_at (default: its threatInfo.updatedAt).

        The same `id` again is a new version of that threat (a vendor-side update).
        """
        threat_id = alert.get("id")
        if not isinstance(threat_id, str) or not threat_id:
            raise ValueError("a threat needs a non-empty string 'id'")
        info = alert.get("threatInfo")
        updated = parse_s1_time(info.get("updatedAt")) if isinstance(info, dict) else None
        if updated is None:
            raise ValueError(f"threat {threat_id} needs an ISO-8601 'threatInfo.updatedAt'")
        when = updated if visible_at is None else visible_at
        require_aware(when, "visible_at")
        with self.lock:
            self.versions.add(threat_id, alert, when)
            self._remember_agent(alert)

    def update_alert(self, alert_id: str, at: datetime, **changes: Any) -> None:
        """A vendor-side change to threat `alert_id`, stamped `threatInfo.updatedAt = at` and
        visible from `at`.

        A dict for `threatInfo`, `agentRealtimeInfo` or `agentDetectionInfo` merges into it;
        any other key that threatInfo holds (incidentStatus, analystVerdict, mitigationStatus
        as a string, ...) is set there, as the console keeps every analyst field there; the
        rest replace top-level members.
        """
        require_aware(at, "at")
        if "id" in changes:
            raise ValueError("an update cannot change the threat id")
        with self.lock:
            current = self.versions.latest(alert_id)
            if current is None:
                raise KeyError(alert_id)
            info = current.setdefault("threatInfo", {})
            for key, value in copy.deepcopy(changes).items():
                if isinstance(value, dict) and isinstance(current.get(key), dict):
                    current[key].update(value)
                elif key in info and not isinstance(value, list):
                    info[key] = value
                else:
                    current[key] = value
            current["threatInfo"]["updatedAt"] = s1_time(at)
            self.versions.add(alert_id, current, at)
            self._remember_agent(current)

    def add_raw(self, raw: Any, visible_at: datetime, sort_time: datetime) -> None:
        """Serve `raw` exactly as given inside listings (a malformed record), placed in sort and
        time filters as if its update and creation time were `sort_time`."""
        require_aware(visible_at, "visible_at")
        require_aware(sort_time, "sort_time")
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        with self.lock:
            key = raw_id if isinstance(raw_id, str) else f"raw-{len(self._raw)}"
            stamp = _micros(sort_time.astimezone(UTC))
            self._raw.append((visible_at, _Row(copy.deepcopy(raw), key, stamp, stamp)))

    def threat(self, threat_id: str) -> dict[str, Any] | None:
        """The newest version of a threat as it is served now (agent state applied)."""
        with self.lock:
            found = self.versions.visible(threat_id, self.clock())
            return None if found is None else copy.deepcopy(self._render(found))

    # -- GET /web/api/v2.1/threats -------------------------------------------------------------
    def _list_threats(self, request: Request, _params: dict[str, str]) -> Reply:
        self._rate_gate(request, "threats")
        query = _parse_query(request)
        rows = [row for row in self._candidates(self.clock()) if query.matches(row)]
        total = None if query.skip_count else len(rows)
        if query.count_only:
            return Reply.json(200, {"data": [], "pagination": {"nextCursor": None, "totalItems": len(rows)}})
        keyed = sorted(((row.sort_key(query.sort_by), row) for row in rows), key=lambda pair: pair[0])
        keys = [key for key, _ in keyed]
        if query.cursor is not None:
            try:
                if query.descending:
                    keyed = keyed[: bisect.bisect_left(keys, query.cursor)]
                else:
                    keyed = keyed[bisect.bisect_right(keys, query.cursor) :]
            except TypeError:
                raise _invalid("cursor", "Cursor does not belong to this sort order") from None
        if query.descending:
            keyed.reverse()
        remaining = keyed[query.skip :]
        page = remaining[: query.limit]
        following = _encode_cursor(query, page[-1][0]) if len(remaining) > len(page) and page else None
        served = self.shape_page("threats", [self._render(row.payload) for _, row in page])
        return Reply.json(200, {"data": served, "pagination": {"nextCursor": following, "totalItems": total}})

    def _candidates(self, now: datetime) -> list[_Row]:
        rows: list[_Row] = []
        for alert in self.versions.all_visible(now):
            # Stored versions are never freed, so their id() is a stable cache key.
            row = self._rows.get(id(alert))
            if row is None:
                row = self._rows[id(alert)] = _row_of(alert)
            rows.append(row)
        rows.extend(row for visible_at, row in self._raw if now >= visible_at)
        return rows

    def _render(self, payload: Any) -> Any:
        # Agent state is realtime: a disconnect shows on every threat of the agent at once,
        # without touching the threat's updatedAt (so an incremental poll does not re-read it).
        if not isinstance(payload, dict):
            return payload
        realtime = payload.get("agentRealtimeInfo")
        agent = realtime.get("agentId") if isinstance(realtime, dict) else None
        status = self.network_status.get(agent) if isinstance(agent, str) else None
        if status is None or not isinstance(realtime, dict):
            return payload
        return {**payload, "agentRealtimeInfo": {**realtime, "agentNetworkStatus": status}}

    def _rate_gate(self, request: Request, path: str) -> None:
        if self._rate_limit is None:
            return
        bucket = self._buckets.get(path)
        if bucket is None:
            bucket = self._buckets[path] = _Bucket(*self._rate_limit)
        wait = bucket.take()
        if wait is not None:
            raise ReplyError(self.throttled(wait))

    # -- POST /web/api/v2.1/agents/actions/{disconnect,connect} --------------------------------
    def _agent_action(self, request: Request, params: dict[str, str]) -> Reply:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("filter"), dict):
            raise _invalid("filter", "Missing data for required field.")
        data = body.get("data", {})
        if not isinstance(data, dict):
            raise _invalid("data", "Not a valid mapping type.")
        selection = body["filter"]
        unknown = sorted(set(selection) - {"ids"})
        if unknown:
            raise _invalid(unknown[0], "Filter not supported by this simulator.")
        ids = selection.get("ids")
        if ids is None:
            # SentinelOne filters select agents: no filter at all means every agent in scope.
            chosen = set(self._agents)
        else:
            if isinstance(ids, str):
                ids = [part.strip() for part in ids.split(",") if part.strip()]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise _invalid("ids", "Not a valid list of ids.")
            chosen = self._agents & set(ids)
        status = "disconnected" if params["action"] == "disconnect" else "connected"
        now = self.clock()
        for agent in sorted(chosen):
            self.network_status[agent] = status
            self.agent_actions.append((params["action"], agent, now))
        return Reply.json(200, {"data": {"affected": len(chosen)}})

    def _remember_agent(self, alert: dict[str, Any]) -> None:
        realtime = alert.get("agentRealtimeInfo")
        agent = realtime.get("agentId") if isinstance(realtime, dict) else None
        if isinstance(agent, str) and agent:
            self._agents.add(agent)


def _row_of(alert: dict[str, Any]) -> _Row:
    info = alert.get("threatInfo")
    info = info if isinstance(info, dict) else {}
    updated = parse_s1_time(info.get("updatedAt")) or _EPOCH
    created = parse_s1_time(info.get("createdAt")) or updated
    return _Row(alert, str(alert.get("id", "")), _micros(updated), _micros(created))


def _parse_query(request: Request) -> _Query:
    for name in request.query:
        if name not in _KNOWN_PARAMS:
            raise _invalid(name, "Unknown field.")
    cursor_text = request.arg("cursor")
    cursor = _decode_cursor(cursor_text) if cursor_text else None
    sort_by = request.arg("sortBy") or (cursor[0] if cursor else "id")
    if sort_by not in _SORT_FIELDS:
        raise _invalid("sortBy", f"Must be one of: {', '.join(_SORT_FIELDS)}.")
    sort_order = request.arg("sortOrder") or (cursor[1] if cursor else "asc")
    if sort_order not in ("asc", "desc"):
        raise _invalid("sortOrder", "Must be one of: asc, desc.")
    if cursor is not None and (cursor[0], cursor[1]) != (sort_by, sort_order):
        raise _invalid("cursor", "Cursor was issued for another sortBy/sortOrder.")
    times = []
    for field in _TIME_FIELDS:
        for op in _TIME_OPS:
            text = request.arg(f"{field}__{op}")
            if text is None:
                continue
            moment = parse_s1_time(text)
            if moment is None:
                raise _invalid(f"{field}__{op}", "Not a valid datetime.")
            times.append((field, op, _micros(moment)))
    lists = []
    for name, (section, field_name) in _LIST_FILTERS.items():
        for param, exclude in ((name, False), (f"{name}Nin", True)):
            text = request.arg(param)
            if text is not None:
                wanted = frozenset(part.strip() for part in text.split(",") if part.strip())
                lists.append((section, field_name, wanted, exclude))
    return _Query(
        limit=_int_arg(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        skip=_int_arg(request, "skip", 0, 0, MAX_SKIP),
        cursor=cursor[2] if cursor else None,
        sort_by=sort_by,
        descending=sort_order == "desc",
        count_only=_bool_arg(request, "countOnly"),
        skip_count=_bool_arg(request, "skipCount"),
        times=tuple(times),
        lists=tuple(lists),
    )


def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.arg(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise _invalid(name, f"Must be between {low} and {high}.")
    return int(text)


def _bool_arg(request: Request, name: str) -> bool:
    text = request.arg(name)
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise _invalid(name, "Not a valid boolean.")
    return text.lower() == "true"


def _encode_cursor(query: _Query, key: SortKey) -> str:
    position = {"by": query.sort_by, "order": "desc" if query.descending else "asc", "after": list(key)}
    return base64.b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def _decode_cursor(text: str) -> tuple[str, str, SortKey]:
    try:
        position = json.loads(base64.b64decode(text.encode(), validate=True))
        by, order, (value, id_key) = position["by"], position["order"], position["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _invalid("cursor", "Invalid cursor.") from None
    if not isinstance(by, str) or not isinstance(order, str) or not isinstance(id_key, str):
        raise _invalid("cursor", "Invalid cursor.")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _invalid("cursor", "Invalid cursor.")
    return by, order, (value, id_key)
