"""Local Microsoft Defender for Endpoint API simulator: Entra tokens, alerts, isolation, faults."""

from __future__ import annotations

import copy
import functools
import json
import re
import uuid
from collections.abc import Callable, Mapping
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
from needle_local.simulators.entra import EntraTenant

MAX_TOP = 10_000
ISOLATION_TYPES = frozenset({"Full", "Selective", "UnManagedDevice"})
# Filterable date fields; the real API accepts more properties, but only these drive polling.
FILTER_FIELDS = frozenset({"lastUpdateTime", "alertCreationTime"})
LISTING = "GET /api/alerts"

_TICKS_PER_SECOND = 10_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)  # every version is visible by then
_API_CONTENT_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
_LIST_OPTIONS = frozenset({"$filter", "$top", "$skip", "$expand"})
_FILTER_TERM = re.compile(r"(?P<field>\w+)\s+(?P<op>ge|gt|le|lt)\s+(?P<value>\S+)")
_FILTER_AND = re.compile(r"\s+and\s+")
_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<frac>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})"
)
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "ge": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}
# fail_next statuses map to the documented MDE error codes; every 5xx is InternalServerError.
_FAULT_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
}


def mde_timestamp(moment: datetime) -> str:
    """`moment` as MDE writes it: UTC, seven fractional digits, `Z`."""
    require_aware(moment, "moment")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


# Every listing request compares every stored alert's times: each string is parsed once.
@functools.lru_cache(maxsize=1 << 18)
def timestamp_ticks(text: str) -> int | None:
    """An ISO-8601 timestamp as 100 ns ticks since the Unix epoch, or None when it is not one.

    Ticks rather than datetime so that the seventh fractional digit MDE sends takes part in
    comparisons, as it does server-side.
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['h']}:{match['m']}:{match['s'] or '00'}")
    except ValueError:
        return None
    tz = match["tz"]
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        moment -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    seconds = (moment.replace(tzinfo=UTC) - _EPOCH) // timedelta(seconds=1)
    fraction = (match["frac"] or "")[:7].ljust(7, "0")
    return seconds * _TICKS_PER_SECOND + int(fraction)


def datetime_ticks(moment: datetime) -> int:
    """An aware datetime as 100 ns ticks since the Unix epoch."""
    require_aware(moment, "moment")
    return (moment - _EPOCH) // timedelta(microseconds=1) * 10


def _api_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    # Every MDE error names a fresh correlation id in `target`.
    body = {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}
    return Reply.json(status, body, content_type=_API_CONTENT_TYPE, headers=headers)


def _odata_error(message: str) -> ReplyError:
    return ReplyError(_api_error(400, "ODataError", message))


@dataclass(frozen=True)
class _Term:
    field: str
    op: str
    ticks: int

    def matches(self, alert: Mapping[str, Any], raw_ticks: int | None) -> bool:
        if raw_ticks is not None:
            # A raw (malformed) record is filed under its sort time for every date field.
            return _COMPARE[self.op](raw_ticks, self.ticks)
        value = alert.get(self.field)
        ticks = timestamp_ticks(value) if isinstance(value, str) else None
        return ticks is not None and _COMPARE[self.op](ticks, self.ticks)


@dataclass(frozen=True)
class _ListOptions:
    terms: tuple[_Term, ...]
    top: int
    skip: int
    expand: bool


@dataclass(frozen=True)
class _RawRecord:
    record: Any
    visible_at: datetime
    sort_ticks: int


def _single_options(query: dict[str, list[str]], allowed: frozenset[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for name, values in query.items():
        if not name.startswith("$"):
            continue
        if name not in allowed:
            raise _odata_error(f"The query parameter '{name}' is not supported.")
        if len(values) != 1:
            raise _odata_error(f"The query parameter '{name}' is specified more than once.")
        options[name] = values[0]
    return options


def _parse_filter(text: str) -> tuple[_Term, ...]:
    terms = []
    for part in _FILTER_AND.split(text.strip()):
        match = _FILTER_TERM.fullmatch(part.strip())
        if match is None or match["field"] not in FILTER_FIELDS:
            raise _odata_error(f"Invalid filter clause '{part.strip()[:80]}'.")
        ticks = timestamp_ticks(match["value"])
        if ticks is None:
            raise _odata_error(f"'{match['value'][:40]}' is not a valid DateTimeOffset literal.")
        terms.append(_Term(match["field"], match["op"], ticks))
    return tuple(terms)


def _int_option(options: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise _odata_error(f"Invalid value '{raw[:20]}' for query parameter '{name}'.")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _odata_error(f"The value of '{name}' must be {bound}, got {value}.")
    return value


def _expand_evidence(options: dict[str, str]) -> bool:
    raw = options.get("$expand")
    if raw is None:
        return False
    if raw.strip() != "evidence":
        raise _odata_error(f"Property '{raw[:40]}' cannot be expanded.")
    return True


def _list_options(query: dict[str, list[str]]) -> _ListOptions:
    options = _single_options(query, _LIST_OPTIONS)
    raw_filter = options.get("$filter")
    return _ListOptions(
        terms=_parse_filter(raw_filter) if raw_filter is not None else (),
        top=_int_option(options, "$top", MAX_TOP, low=1, high=MAX_TOP),
        skip=_int_option(options, "$skip", 0, low=0, high=None),
        expand=_expand_evidence(options),
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict):
        raise ReplyError(_api_error(400, "InvalidRequestBody", "Request body must be a JSON object."))
    return payload


class MdeSimulator(HttpSimulator):
    """An MDE tenant on 127.0.0.1: alerts appear per a scenario clock, tokens expire per wall time.

    Listings honour `$filter` (`lastUpdateTime`/`alertCreationTime` `ge|gt|le|lt`, `and`), `$top`
    (1..10,000, else 400 ODataError), `$skip` and `$expand=evidence`, sorted by id (the API
    documents no order). Faults come from the base: `fail_next`, `throttle_next`,
    `faults.latency_seconds`, `faults.expire_tokens_after(n)`, and the page faults
    `faults.duplicate_page_probability` / `faults.shuffle_pages` applied to `/api/alerts` pages.
    """

    name = "mde-simulator"

    def __init__(
        self,
        *,
        tenant_id: str = "sim-tenant",
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",  # noqa: S107 - a fixed credential of a local fake
        token_ttl_seconds: int = 3599,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(clock)
        self.entra = EntraTenant(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            token_ttl_seconds=token_ttl_seconds,
            clock=clock,
        )
        # Every version of an alert is kept so an update that is not yet visible leaves the
        # previous version served, as a vendor's eventually consistent read side does.
        self._alerts = AlertVersions()
        self._raw: dict[str, _RawRecord] = {}
        self._actions: dict[str, dict[str, Any]] = {}
        self.isolated: dict[str, dict[str, Any]] = {}

    # -- the vendor's shape ----------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            self.entra.route("POST /token"),
            Route("GET", r"/api/alerts/?", LISTING, self._list_alerts, listing=True),
            Route("GET", r"/api/alerts/(?P<id>[^/]+)", "GET /api/alerts/{id}", self._get_alert),
            Route(
                "POST",
                r"/api/machines/(?P<id>[^/]+)/isolate",
                "POST /api/machines/{id}/isolate",
                self._isolate,
            ),
            Route(
                "GET",
                r"/api/machineactions/(?P<id>[^/]+)",
                "GET /api/machineactions/{id}",
                self._get_machine_action,
            ),
        ]

    def authenticated(self, request: Request) -> bool:
        return self.entra.valid(request.headers.get("authorization", ""))

    def unauthorized(self) -> Reply:
        return _api_error(401, "Unauthorized", "Authorization header is missing, invalid or expired.")

    def throttled(self, retry_after_seconds: int) -> Reply:
        return _api_error(
            429,
            "TooManyRequests",
            f"Rate limit is exceeded. Try again in {retry_after_seconds} seconds.",
            headers={"Retry-After": str(retry_after_seconds)},
        )

    def failed(self, status: int) -> Reply:
        code = "InternalServerError" if status >= 500 else _FAULT_CODES.get(status, "BadRequest")
        return _api_error(status, code, "" if status >= 500 else "Injected failure.")

    def not_found(self, request: Request) -> Reply:
        return _api_error(404, "NotFound", f"Resource {request.path[:100]} was not found.")

    # -- scenario control ------------------------------------------------------------------

    def add_alert(self, alert: dict[str, Any], visible_at: datetime | None = None) -> None:
        """Serve `alert` once clock() >= visible_at (default: its lastUpdateTime); same id = update."""
        alert_id = alert.get("id")
        if not isinstance(alert_id, str) or not alert_id:
            raise ValueError("alert needs a non-empty string 'id'")
        updated = alert.get("lastUpdateTime")
        if not isinstance(updated, str) or timestamp_ticks(updated) is None:
            raise ValueError(f"alert {alert_id} needs an ISO-8601 'lastUpdateTime'")
        if visible_at is None:
            visible_at = _parse_visible(updated)
        require_aware(visible_at, "visible_at")
        stored = {**alert}
        stored.setdefault("evidence", [])
        with self.lock:
            self._alerts.add(alert_id, stored, visible_at)

    def update_alert(self, alert_id: str, at: datetime, **changes: Any) -> None:
        """A vendor-side change to `alert_id`, stamped and visible from `at`."""
        require_aware(at, "at")
        if "id" in changes:
            raise ValueError("an update cannot change the alert id")
        with self.lock:
            updated = self._alerts.latest(alert_id)
            if updated is None:
                raise KeyError(alert_id)
            updated.update(changes)
            updated["lastUpdateTime"] = mde_timestamp(at)
            self._alerts.add(alert_id, updated, at)

    def add_raw(self, raw: Any, visible_at: datetime, sort_time: datetime) -> None:
        """Serve `raw` exactly as given inside `/api/alerts` listings once clock() >= visible_at.

        For a malformed record the server cannot read: every date filter treats it as if both
        dates were `sort_time`, and it is listed by its `id` when that is a string.
        """
        require_aware(visible_at, "visible_at")
        with self.lock:
            key = f"~raw-{len(self._raw):06d}"
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                key = f"{raw['id']}{key}"
            self._raw[key] = _RawRecord(copy.deepcopy(raw), visible_at, datetime_ticks(sort_time))

    def expire_tokens(self) -> None:
        with self.lock:
            self.entra.expire_all()

    # -- request handling ------------------------------------------------------------------

    def _render(self, alert: dict[str, Any], expand: bool) -> dict[str, Any]:
        return alert if expand else {**alert, "evidence": []}

    def _list_alerts(self, request: Request, _params: dict[str, str]) -> Reply:
        options = _list_options(request.query)
        now = self.clock()
        # Sorted by id only so $skip paging is stable; callers must not read time order into it.
        rows: list[tuple[str, Any]] = []
        for alert in self._alerts.all_visible(now):
            if all(term.matches(alert, None) for term in options.terms):
                rows.append((alert["id"], self._render(alert, options.expand)))
        for key, raw in self._raw.items():
            if now >= raw.visible_at and all(term.matches({}, raw.sort_ticks) for term in options.terms):
                rows.append((key, raw.record))
        rows.sort(key=lambda row: row[0])
        page = [row for _, row in rows[options.skip : options.skip + options.top]]
        body = {
            "@odata.context": f"{self.base_url}/api/$metadata#Alerts",
            "value": self.shape_page(LISTING, page),
        }
        return Reply.json(200, body, content_type=_API_CONTENT_TYPE)

    def _get_alert(self, request: Request, params: dict[str, str]) -> Reply:
        expand = _expand_evidence(_single_options(request.query, frozenset({"$expand"})))
        alert = self._alerts.visible(params["id"], self.clock())
        if alert is None:
            raise ReplyError(
                _api_error(404, "ResourceNotFound", f"Alert {params['id'][:100]} was not found.")
            )
        body = {
            "@odata.context": f"{self.base_url}/api/$metadata#Alerts/$entity",
            **self._render(alert, expand),
        }
        return Reply.json(200, body, content_type=_API_CONTENT_TYPE)

    def _machine(self, machine_id: str) -> dict[str, Any] | None:
        # A device exists once any alert names it, visible or not: devices precede their alerts.
        wanted = machine_id.lower()
        for alert in self._alerts.all_visible(_END_OF_TIME):
            if str(alert.get("machineId", "")).lower() == wanted:
                return alert
        return None

    def _isolate(self, request: Request, params: dict[str, str]) -> Reply:
        body = _json_object(request.body)
        comment = body.get("Comment")
        if not isinstance(comment, str) or not comment.strip():
            raise ReplyError(_api_error(400, "InvalidRequestBody", "Comment is required."))
        isolation = body.get("IsolationType", "Full")
        if not isinstance(isolation, str) or isolation not in ISOLATION_TYPES:
            message = "IsolationType must be one of Full, Selective, UnManagedDevice."
            raise ReplyError(_api_error(400, "InvalidRequestBody", message))
        alert = self._machine(params["id"])
        if alert is None:
            raise ReplyError(
                _api_error(404, "ResourceNotFound", f"Machine {params['id'][:100]} was not found.")
            )
        stamp = mde_timestamp(self.clock())
        action: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "type": "Isolate",
            "title": None,
            "requestor": self.entra.client_id,
            "requestorComment": comment,
            "status": "Pending",
            "machineId": alert["machineId"],
            "computerDnsName": alert.get("computerDnsName"),
            "creationDateTimeUtc": stamp,
            "lastUpdateDateTimeUtc": stamp,
            "cancellationRequestor": None,
            "cancellationComment": None,
            "cancellationDateTimeUtc": None,
            "errorHResult": 0,
            "scope": isolation,
            "externalID": None,
            "requestSource": "PublicApi",
            "relatedFileInfo": None,
            "commands": [],
            "troubleshootInfo": None,
        }
        self._actions[action["id"]] = action
        self.isolated[action["machineId"]] = action
        return Reply.json(201, self._action_body(action), content_type=_API_CONTENT_TYPE)

    def _get_machine_action(self, _request: Request, params: dict[str, str]) -> Reply:
        action = self._actions.get(params["id"])
        if action is None:
            raise ReplyError(
                _api_error(404, "ResourceNotFound", f"MachineAction {params['id'][:100]} was not found.")
            )
        # The device acts between the request and the first status poll.
        if action["status"] == "Pending":
            action["status"] = "Succeeded"
            action["lastUpdateDateTimeUtc"] = mde_timestamp(self.clock())
        return Reply.json(200, self._action_body(action), content_type=_API_CONTENT_TYPE)

    def _action_body(self, action: dict[str, Any]) -> dict[str, Any]:
        return {"@odata.context": f"{self.base_url}/api/$metadata#MachineActions/$entity", **action}


def _parse_visible(text: str) -> datetime:
    ticks = timestamp_ticks(text)
    if ticks is None:
        raise ValueError(f"not an ISO-8601 timestamp: {text[:40]!r}")
    # Truncating to microseconds can only make the alert visible up to 100 ns early.
    return _EPOCH + timedelta(microseconds=ticks // 10)
