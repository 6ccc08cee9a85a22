"""Local CrowdStrike Falcon API simulator: OAuth2, Alerts v2 (query, entities, combined), containment.

Every reply carries Falcon's envelope `{"meta":{query_time, powered_by, trace_id[, pagination]},
"resources":[…], "errors":[…]}` and the `X-RateLimit-Limit`/`X-RateLimit-Remaining`/`X-Cs-Traceid`
headers. A 429 names the Unix epoch second to retry at in `X-RateLimit-RetryAfter` (real time,
not scenario time: it is a wire signal about when the gateway opens again).
"""

from __future__ import annotations

import base64
import binascii
import collections
import copy
import functools
import json
import math
import random
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

MAX_QUERY_LIMIT = 10_000
MAX_COMBINED_LIMIT = 1_000
# An Elasticsearch-style result window: offset + limit beyond it is refused (the exact cap is not
# documented; 10,000 is where CrowdStrike points bulk readers at the combined endpoint).
RESULT_WINDOW = 10_000
MAX_ENTITY_IDS = 5_000  # FalconPy's sample passes up to 5,000 ids per entities call
DEFAULT_LIMIT = 100
DEFAULT_SORT = "created_timestamp|desc"
TIME_FIELDS = frozenset({"updated_timestamp", "created_timestamp", "timestamp"})
SORT_FIELDS = TIME_FIELDS | {"severity", "composite_id"}
DEVICE_ACTIONS = frozenset({"contain", "lift_containment"})

_STAMP = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d{2}:\d{2})"
)
_CLAUSE = re.compile(r"(?P<field>[a-z_]+):(?P<op>>=|<=|>|<|!)?(?P<quote>['\"])(?P<value>.*)(?P=quote)", re.S)
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
_STATUS_MESSAGES = {
    400: "Bad Request",
    403: "access denied, authorization failed",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def cs_timestamp(moment: datetime) -> str:
    """`moment` as Falcon writes `updated_timestamp`: UTC RFC 3339 with nine fractional digits."""
    require_aware(moment, "moment")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def timestamp_ns(text: Any) -> int | None:
    """An RFC 3339 time as nanoseconds since the epoch (every digit Falcon sends takes part)."""
    return _timestamp_ns(text) if isinstance(text, str) else None


# Every query request compares every stored alert's times: each string is parsed once.
@functools.lru_cache(maxsize=1 << 18)
def _timestamp_ns(text: str) -> int | None:
    match = _STAMP.fullmatch(text.strip())
    if match is None:
        return None
    tz = match["tz"]
    try:
        moment = datetime.fromisoformat(match["base"] + ("+00:00" if tz == "Z" else tz))
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000_000 + int((match["frac"] or "")[:9].ljust(9, "0"))


def _from_ns(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


@dataclass(frozen=True)
class _Clause:
    field: str
    op: str  # ">", ">=", "<", "<=" on times; "" (equal) or "!" (not equal) on product
    value: Any

    def matches(self, row: _Row) -> bool:
        if self.field == "product":
            equal = row.product == self.value
            return not equal if self.op == "!" else equal
        stamp = row.times.get(self.field)
        return stamp is not None and _COMPARE[self.op](stamp, self.value)


@dataclass(frozen=True)
class _Row:
    key: str
    body: Any
    times: dict[str, int | None]
    product: Any
    severity: Any

    def sort_key(self, field: str) -> tuple[Any, ...]:
        value: Any
        if field in TIME_FIELDS:
            value = self.times.get(field)
        elif field == "severity":
            value = self.severity if isinstance(self.severity, int) else None
        else:
            value = self.key
        # Rows without the field sort first; the composite id breaks ties so paging is stable.
        return (0, 0, self.key) if value is None else (1, value, self.key)


def _error(status: int, message: str) -> dict[str, Any]:
    return {"code": status, "message": message}


class CrowdStrikeSimulator(HttpSimulator):
    """A Falcon CID on 127.0.0.1: alerts appear per the scenario clock, tokens expire per wall time."""

    name = "crowdstrike-simulator"

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = utc_now,
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",  # noqa: S107 - a fixed credential of a local fake
        token_ttl_seconds: int = 1799,
        region: str = "us-1",
        rate_limit: int = 6000,
        result_window: int = RESULT_WINDOW,
        cid: str = "5c1d0e9f8a7b46c3b2a1908f7e6d5c4b",
    ) -> None:
        super().__init__(clock)
        if token_ttl_seconds < 0:
            raise ValueError("token_ttl_seconds must not be negative")
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.region = region
        self.rate_limit = rate_limit
        self.result_window = result_window
        self.cid = cid
        self.alerts = AlertVersions()
        self.contained: set[str] = set()
        self._raw: dict[str, tuple[Any, datetime, datetime]] = {}
        self._tokens: dict[str, float] = {}
        self._errors_in_200: collections.deque[tuple[int, str]] = collections.deque()
        self._calls: collections.deque[float] = collections.deque()
        self._random = random.Random(11)

    # -- scenario control --------------------------------------------------------------------

    def add_alert(self, alert: dict[str, Any], visible_at: datetime | None = None) -> None:
        """Serve `alert` once clock() >= visible_at (default: its updated_timestamp); the same
        `composite_id` again is a new version, i.e. a vendor-side update."""
        composite_id = alert.get("composite_id")
        if not isinstance(composite_id, str) or not composite_id:
            raise ValueError("alert needs a non-empty string 'composite_id'")
        updated = timestamp_ns(alert.get("updated_timestamp"))
        if updated is None:
            raise ValueError(f"alert {composite_id} needs an RFC 3339 'updated_timestamp'")
        with self.lock:
            self.alerts.add(composite_id, alert, visible_at or _from_ns(updated))

    def update_alert(self, composite_id: str, at: datetime, **changes: Any) -> dict[str, Any]:
        """A vendor-side change to `composite_id`, stamped and visible from `at`; returns it."""
        require_aware(at, "at")
        if "composite_id" in changes:
            raise ValueError("an update cannot change the composite_id")
        with self.lock:
            latest = self.alerts.latest(composite_id)
            if latest is None:
                raise KeyError(composite_id)
            latest.update(copy.deepcopy(changes))
            latest["updated_timestamp"] = cs_timestamp(at)
            self.alerts.add(composite_id, latest, at)
            return latest

    def add_raw(self, raw: Any, visible_at: datetime, sort_time: datetime) -> str:
        """Serve `raw` as it is (a malformed record) inside listings, sorted and filtered as if
        every time field were `sort_time`; returns the id the query endpoint lists it under."""
        require_aware(visible_at, "visible_at")
        require_aware(sort_time, "sort_time")
        with self.lock:
            key = f"{self.cid}:raw:{len(self._raw):08d}"
            self._raw[key] = (copy.deepcopy(raw), visible_at, sort_time)
            return key

    def expire_tokens(self) -> None:
        with self.lock:
            self._tokens.clear()

    def errors_in_200_next(
        self, n: int, code: int = 403, message: str = "access denied, authorization failed"
    ) -> None:
        """The next n API calls answer HTTP 200 with a non-empty `errors` (seen for scope errors)."""
        if n < 0:
            raise ValueError("errors_in_200_next needs n >= 0")
        with self.lock:
            self._errors_in_200.extend([(code, message)] * n)

    # -- HttpSimulator hooks -------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("POST", r"/oauth2/token", "POST /oauth2/token", self._token, authenticated=False),
            Route(
                "GET",
                r"/alerts/queries/alerts/v2",
                "GET /alerts/queries/alerts/v2",
                self._query,
                listing=True,
            ),
            Route("POST", r"/alerts/entities/alerts/v2", "POST /alerts/entities/alerts/v2", self._entities),
            Route(
                "POST",
                r"/alerts/combined/alerts/v1",
                "POST /alerts/combined/alerts/v1",
                self._combined,
                listing=True,
            ),
            Route(
                "POST",
                r"/devices/entities/devices-actions/v2",
                "POST /devices/entities/devices-actions/v2",
                self._device_action,
            ),
        ]

    def authenticated(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        expires_at = self._tokens.get(token)
        if expires_at is None:
            return False
        if time.monotonic() >= expires_at:
            del self._tokens[token]
            return False
        return True

    def unauthorized(self) -> Reply:
        return self._reply(401, errors=[_error(401, "access denied, invalid bearer token")])

    def throttled(self, retry_after_seconds: int) -> Reply:
        # Rounded up so a client waiting until the epoch second waits at least the asked delay.
        retry_at = math.ceil(time.time() + retry_after_seconds)
        return self._reply(
            429,
            errors=[_error(429, "API rate limit exceeded.")],
            headers={"X-RateLimit-RetryAfter": str(retry_at), "X-RateLimit-Remaining": "0"},
        )

    def failed(self, status: int) -> Reply:
        return self._reply(status, errors=[_error(status, _STATUS_MESSAGES.get(status, "Error"))])

    def not_found(self, request: Request) -> Reply:
        return self._reply(404, errors=[_error(404, "Not Found")])

    # -- envelope ----------------------------------------------------------------------------

    def _reply(
        self,
        status: int,
        *,
        resources: list[Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        pagination: dict[str, Any] | None = None,
        powered_by: str = "crowdstrike-api-gateway",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        trace_id = str(uuid.uuid4())
        meta: dict[str, Any] = {
            "query_time": round(self._random.uniform(0.0005, 0.05), 9),
            "powered_by": powered_by,
            "trace_id": trace_id,
        }
        if pagination is not None:
            meta["pagination"] = pagination
        body = {"meta": meta, "resources": resources if resources is not None else [], "errors": errors or []}
        return Reply.json(status, body, headers={**self._rate_headers(trace_id), **(headers or {})})

    def _rate_headers(self, trace_id: str) -> dict[str, str]:
        # A sliding minute of calls, as Falcon counts per CID; informational only (429s are injected).
        now = time.monotonic()
        self._calls.append(now)
        while self._calls and self._calls[0] <= now - 60:
            self._calls.popleft()
        return {
            "X-Cs-Traceid": trace_id,
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - len(self._calls))),
        }

    def _bad_request(self, message: str) -> ReplyError:
        return ReplyError(self._reply(400, errors=[_error(400, message)]))

    def _injected_200(self) -> None:
        if self._errors_in_200:
            code, message = self._errors_in_200.popleft()
            raise ReplyError(self._reply(200, errors=[_error(code, message)]))

    # -- OAuth2 ------------------------------------------------------------------------------

    def _token(self, request: Request, _params: dict[str, str]) -> Reply:
        form = request.form()
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secret:
            raise self._bad_request("client_id and client_secret are required")
        if client_id != self.client_id or not secrets.compare_digest(
            secret.encode(), self._client_secret.encode()
        ):
            # Falcon answers a wrong credential (or an address outside the allow-list) with 403.
            raise ReplyError(self._reply(403, errors=[_error(403, "access denied, authorization failed")]))
        token = secrets.token_urlsafe(48)
        self._tokens[token] = time.monotonic() + self.token_ttl_seconds
        trace_id = str(uuid.uuid4())
        # The token body is the bare token document (no envelope), as FalconPy and gofalcon read it.
        body = {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl_seconds}
        return Reply.json(201, body, headers={**self._rate_headers(trace_id), "X-Cs-Region": self.region})

    # -- alerts ------------------------------------------------------------------------------

    def _rows(self, clauses: list[_Clause]) -> list[_Row]:
        now = self.clock()
        rows: list[_Row] = []
        keys = self.alerts.keys()  # AlertVersions is not iterable itself
        for key in keys:
            alert = self.alerts.visible(key, now)
            if alert is None:
                continue
            row = _Row(
                key,
                alert,
                {name: timestamp_ns(alert.get(name)) for name in TIME_FIELDS},
                alert.get("product"),
                alert.get("severity"),
            )
            if all(clause.matches(row) for clause in clauses):
                rows.append(row)
        for key, (raw, visible_at, sort_time) in self._raw.items():
            if now < visible_at:
                continue
            stamp = timestamp_ns(cs_timestamp(sort_time))  # the precision a listed alert would have
            product = raw.get("product") if isinstance(raw, dict) else None
            row = _Row(key, raw, dict.fromkeys(TIME_FIELDS, stamp), product, None)
            if all(clause.matches(row) for clause in clauses):
                rows.append(row)
        return rows

    def _parse_filter(self, text: str | None) -> list[_Clause]:
        if text is None or not text.strip():
            return []
        clauses = []
        for part in _split_outside_quotes(text):
            match = _CLAUSE.fullmatch(part.strip())
            if match is None:
                raise self._bad_request(f"Invalid filter expression: {part.strip()[:80]}")
            field, op = match["field"], match["op"] or ""
            if field in TIME_FIELDS:
                stamp = timestamp_ns(match["value"])
                if op not in _COMPARE or stamp is None:
                    raise self._bad_request(f"Invalid filter expression: {part.strip()[:80]}")
                clauses.append(_Clause(field, op, stamp))
            elif field == "product" and op in ("", "!"):
                clauses.append(_Clause(field, op, match["value"]))
            else:
                raise self._bad_request(f"Unsupported filter field or operator: {field[:40]}")
        return clauses

    def _parse_sort(self, text: str | None) -> tuple[str, bool]:
        field, sep, direction = (text or DEFAULT_SORT).strip().replace(".", "|").partition("|")
        direction = direction.lower() if sep else "asc"
        if field not in SORT_FIELDS or direction not in ("asc", "desc"):
            raise self._bad_request(f"Invalid sort: {(text or '')[:60]}")
        return field, direction == "desc"

    def _sorted(self, rows: list[_Row], field: str, descending: bool) -> list[_Row]:
        return sorted(rows, key=lambda row: row.sort_key(field), reverse=descending)

    def _int_arg(self, request: Request, name: str, default: int, low: int, high: int | None) -> int:
        raw = request.arg(name)
        if raw is None or raw == "":
            return default
        if not raw.isascii() or not raw.isdigit():
            raise self._bad_request(f"Invalid value for {name}: {raw[:20]}")
        value = int(raw)
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self._bad_request(f"{name} must be {bound}")
        return value

    def _render(self, body: Any) -> Any:
        device = body.get("device") if isinstance(body, dict) else None
        if isinstance(device, dict) and device.get("device_id") in self.contained:
            return {**body, "device": {**device, "status": "contained"}}
        return body

    def _query(self, request: Request, _params: dict[str, str]) -> Reply:
        self._injected_200()
        clauses = self._parse_filter(request.arg("filter"))
        field, descending = self._parse_sort(request.arg("sort"))
        limit = self._int_arg(request, "limit", DEFAULT_LIMIT, 1, MAX_QUERY_LIMIT)
        offset = self._int_arg(request, "offset", 0, 0, None)
        if offset + limit > self.result_window:
            raise self._bad_request(f"offset + limit must not exceed {self.result_window}")
        rows = self._sorted(self._rows(clauses), field, descending)
        ids = self.shape_page("alerts-query", [row.key for row in rows[offset : offset + limit]])
        return self._reply(
            200,
            resources=ids,
            pagination={"offset": offset, "limit": limit, "total": len(rows)},
            powered_by="detectsapi",
        )

    def _entities(self, request: Request, _params: dict[str, str]) -> Reply:
        self._injected_200()
        body = request.json()
        ids = body.get("composite_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise self._bad_request("composite_ids must be a non-empty list of strings")
        if len(ids) > MAX_ENTITY_IDS:
            raise self._bad_request(f"at most {MAX_ENTITY_IDS} composite_ids per request")
        now = self.clock()
        resources = []
        for key in ids:
            # Unknown (or not yet visible) ids are left out, not reported.
            alert = self.alerts.visible(key, now)
            if alert is not None:
                resources.append(self._render(alert))
                continue
            raw = self._raw.get(key)
            if raw is not None and now >= raw[1]:
                resources.append(raw[0])
        return self._reply(200, resources=resources, powered_by="detectsapi")

    def _combined(self, request: Request, _params: dict[str, str]) -> Reply:
        self._injected_200()
        body = request.json()
        if body is None and request.body.strip():
            raise self._bad_request("Request body must be a JSON object")
        body = body if body is not None else {}
        if not isinstance(body, dict):
            raise self._bad_request("Request body must be a JSON object")
        limit = body.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_COMBINED_LIMIT:
            raise self._bad_request(f"limit must be between 1 and {MAX_COMBINED_LIMIT}")
        filter_text, sort_text = body.get("filter"), body.get("sort")
        if not isinstance(filter_text, str | None) or not isinstance(sort_text, str | None):
            raise self._bad_request("filter and sort must be strings")
        clauses = self._parse_filter(filter_text)
        field, descending = self._parse_sort(sort_text)
        spec = f"{field}|{'desc' if descending else 'asc'}"
        rows = self._sorted(self._rows(clauses), field, descending)
        start = 0
        after = body.get("after")
        if after not in (None, ""):
            position = _decode_after(after, spec)
            if position is None:
                raise self._bad_request("Invalid after token (the sort changed, or it was altered)")
            # Keyset paging: the first row past the last one served, so live updates never shift it.
            start = next(
                (
                    i
                    for i, row in enumerate(rows)
                    if (row.sort_key(field) < position if descending else row.sort_key(field) > position)
                ),
                len(rows),
            )
        served = rows[start : start + limit]
        pagination: dict[str, Any] = {"limit": limit, "total": len(rows)}
        if served and start + limit < len(rows):
            pagination["after"] = _encode_after(served[-1].sort_key(field), spec)
        resources = self.shape_page("alerts-combined", [self._render(row.body) for row in served])
        return self._reply(200, resources=resources, pagination=pagination, powered_by="detectsapi")

    # -- hosts -------------------------------------------------------------------------------

    def _known_devices(self) -> set[str]:
        # A host exists once any alert names it, visible or not: devices precede their alerts.
        known = set()
        keys = self.alerts.keys()
        for key in keys:
            alert = self.alerts.latest(key) or {}
            device = alert.get("device")
            if isinstance(device, dict) and isinstance(device.get("device_id"), str):
                known.add(device["device_id"])
            if isinstance(alert.get("agent_id"), str):
                known.add(alert["agent_id"])
        return known

    def _device_action(self, request: Request, _params: dict[str, str]) -> Reply:
        self._injected_200()
        action = request.arg("action_name")
        if action not in DEVICE_ACTIONS:
            raise self._bad_request("Provided data does not match expected 'Action Parameter' format")
        body = request.json()
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise self._bad_request("ids must be a non-empty list of strings")
        known = self._known_devices()
        resources, errors = [], []
        for device_id in ids:
            if device_id not in known:
                errors.append(_error(404, f"No matching device found for ID {device_id[:64]}"))
            elif (action == "contain") == (device_id in self.contained):
                state = "already contained" if action == "contain" else "not contained"
                errors.append(_error(409, f"Device {device_id[:64]} is {state}"))
            else:
                if action == "contain":
                    self.contained.add(device_id)
                else:
                    self.contained.discard(device_id)
                resources.append({"id": device_id, "path": f"/devices/entities/devices/v2?ids={device_id}"})
        status = 202 if resources else errors[0]["code"]
        return self._reply(status, resources=resources, errors=errors, powered_by="device-api")


def _split_outside_quotes(text: str) -> list[str]:
    """FQL clauses are joined by `+` (AND). A `+` sent unencoded arrives as a space, so spaces
    outside quotes separate clauses too; inside a quoted value (a UTC offset) both are kept."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == "+" or char.isspace():
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part]


def _encode_after(position: tuple[Any, ...], spec: str) -> str:
    payload = json.dumps({"sort": spec, "position": list(position)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _decode_after(token: Any, spec: str) -> tuple[Any, ...] | None:
    if not isinstance(token, str):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("sort") != spec:
        return None
    position = payload.get("position")
    if not isinstance(position, list) or len(position) != 3:
        return None
    return tuple(position)
