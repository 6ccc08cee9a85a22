"""Local Microsoft Graph security API simulator: `GET /v1.0/security/alerts_v2` behind Entra tokens.

What it mimics (docs: microsoft-graph-docs-contrib security-list-alerts_v2.md, security-alert.md;
paging limits as Elastic reads them, elastic/integrations#20234):

- `$filter` on the eight documented properties, terms joined by `and`: `createdDateTime` and
  `lastUpdateDateTime` with `eq|ne|ge|gt|le|lt` and an unquoted DateTimeOffset literal;
  `assignedTo`, `classification`, `determination`, `severity`, `serviceSource`, `status` with
  `eq|ne` and a quoted string (enum members are checked). Anything else is a 400.
- `$orderby=lastUpdateDateTime|createdDateTime [asc|desc]`; without it the newest alerts come
  first ("the most recent alerts are displayed at the top of the list").
- `$top` clamped at 1000 (default 1000 [U]), `$skip`, `$top + $skip > 6000` is a 400, `$count`.
  `@odata.nextLink` (the same query with `$skip` advanced) while more rows remain.
- Evolvable enums: without `Prefer: include-unknown-enum-members`, members added after
  `unknownFutureValue` (e.g. serviceSource `microsoftDefenderForCloud`) read `unknownFutureValue`.
- Errors in the Graph shape `{"error":{"code","message","innerError":{date,request-id,
  client-request-id}}}`: 401 `InvalidAuthenticationToken` (also for a token minted for another
  resource), 429 `TooManyRequests` with `Retry-After`, 5xx `generalException`/`serviceNotAvailable`.
- Optional throttling at `rate_limit_per_minute` (the documented limit is 150 per app per tenant).
"""

from __future__ import annotations

import collections
import copy
import math
import re
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

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
from needle_local.simulators.entra import EntraTenant, TokenCheck
from needle_local.simulators.mde import datetime_ticks, timestamp_ticks

ALERTS_PATH = "/v1.0/security/alerts_v2"
LISTING = f"GET {ALERTS_PATH}"
MAX_TOP = 1000
MAX_TOP_PLUS_SKIP = 6000
GRAPH_AUDIENCES = frozenset(
    {
        "https://graph.microsoft.com",
        "https://graph.microsoft.com/",
        "00000003-0000-0000-c000-000000000000",  # Graph's well-known application id
    }
)
PREFER_UNKNOWN_ENUMS = "include-unknown-enum-members"

# Members after `unknownFutureValue` are "evolvable": only served to callers that opt in.
SERVICE_SOURCES = (
    "unknown",
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForIdentity",
    "microsoftDefenderForCloudApps",
    "microsoftDefenderForOffice365",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "microsoftAppGovernance",
    "dataLossPrevention",
    "unknownFutureValue",
    "microsoftDefenderForCloud",
)
DETECTION_SOURCES = (
    "unknown",
    "microsoftDefenderForEndpoint",
    "antivirus",
    "smartScreen",
    "customTi",
    "microsoftDefenderForOffice365",
    "automatedInvestigation",
    "microsoftThreatExperts",
    "customDetection",
    "microsoftDefenderForIdentity",
    "cloudAppSecurity",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "manual",
    "microsoftDataLossPrevention",
    "appGovernancePolicy",
    "appGovernanceDetection",
    "unknownFutureValue",
    *(
        f"microsoftDefenderFor{name}"
        for name in (
            "Cloud",
            "IoT",
            "Servers",
            "Storage",
            "DNS",
            "Databases",
            "Containers",
            "Network",
            "AppService",
            "KeyVault",
            "ResourceManager",
            "ApiManagement",
        )
    ),
)
ENUMS: dict[str, tuple[str, ...]] = {
    "status": ("unknown", "new", "inProgress", "resolved", "unknownFutureValue"),
    "severity": ("unknown", "informational", "low", "medium", "high", "unknownFutureValue"),
    "classification": (
        "unknown",
        "falsePositive",
        "truePositive",
        "informationalExpectedActivity",
        "unknownFutureValue",
    ),
    "determination": (
        "unknown",
        "apt",
        "malware",
        "securityPersonnel",
        "securityTesting",
        "unwantedSoftware",
        "other",
        "multiStagedAttack",
        "compromisedUser",
        "compromisedAccount",
        "phishing",
        "maliciousUserActivity",
        "clean",
        "notMalicious",
        "insufficientData",
        "notEnoughDataToValidate",
        "confirmedUserActivity",
        "confirmedActivity",
        "lineOfBusinessApplication",
        "unknownFutureValue",
    ),
    "serviceSource": SERVICE_SOURCES,
}
DATE_FIELDS = frozenset({"createdDateTime", "lastUpdateDateTime"})
STRING_FIELDS = frozenset({"assignedTo", *ENUMS})
_EVOLVABLE = {
    field: frozenset(members[members.index("unknownFutureValue") + 1 :])
    for field, members in (("serviceSource", SERVICE_SOURCES), ("detectionSource", DETECTION_SOURCES))
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
_LIST_OPTIONS = frozenset({"$filter", "$orderby", "$top", "$skip", "$count"})
_TERM = re.compile(
    r"\s*(?P<field>[A-Za-z]\w*)\s+(?P<op>eq|ne|ge|gt|le|lt)\s+"
    r"(?P<value>'(?:[^']|'')*'|[^\s']+)\s*"
)
_AND = re.compile(r"and\b")
_ORDERBY = re.compile(r"\s*(?P<field>\w+)(?:\s+(?P<dir>asc|desc))?\s*")
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "ge": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}
_FAULT_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "generalException",
    503: "serviceNotAvailable",
    504: "timeout",
}
_UNAUTHORIZED = {
    TokenCheck.MISSING: "Access token is empty.",
    TokenCheck.UNKNOWN: "Access token validation failure.",
    TokenCheck.EXPIRED: "Access token has expired or is not yet valid.",
    TokenCheck.WRONG_AUDIENCE: "Access token validation failure. Invalid audience.",
}


def graph_timestamp(moment: datetime) -> str:
    """`moment` as Graph writes a DateTimeOffset: UTC, up to seven fractional digits, zeros trimmed."""
    require_aware(moment, "moment")
    utc = moment.astimezone(UTC)
    fraction = f"{utc.microsecond:06d}0".rstrip("0")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def _value_ticks(record: Mapping[str, Any], field: str) -> int | None:
    value = record.get(field)
    return timestamp_ticks(value) if isinstance(value, str) else None


def graph_error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> Reply:
    """A Graph error reply; every one carries fresh request ids in `innerError`."""
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": utc_now().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }
    return Reply.json(status, body, content_type=_CONTENT_TYPE, headers=headers)


def _bad_request(message: str) -> ReplyError:
    return ReplyError(graph_error(400, "BadRequest", message))


@dataclass(frozen=True)
class _Term:
    field: str
    op: str
    ticks: int | None = None  # date terms
    text: str | None = None  # string terms (None: the literal `null`)

    def matches(self, record: Mapping[str, Any], raw_ticks: int | None) -> bool:
        if self.ticks is not None:
            # A raw (malformed) record is filed under its sort time for both date fields.
            ticks = raw_ticks if raw_ticks is not None else _value_ticks(record, self.field)
            return ticks is not None and _COMPARE[self.op](ticks, self.ticks)
        value = record.get(self.field)
        return (value == self.text) is (self.op == "eq")


@dataclass(frozen=True)
class _ListOptions:
    terms: tuple[_Term, ...]
    order_field: str
    descending: bool
    top: int
    skip: int
    count: bool
    echo: dict[str, str]  # the options as the caller gave them, for the next link


@dataclass(frozen=True)
class _RawRecord:
    record: Any
    visible_at: datetime
    sort_ticks: int


def _parse_term(match: re.Match[str]) -> _Term:
    field, op, value = match["field"], match["op"], match["value"]
    if field in DATE_FIELDS:
        ticks = timestamp_ticks(value) if not value.startswith("'") else None
        if ticks is None:
            raise _bad_request(f"'{value[:40]}' is not a valid DateTimeOffset literal for '{field}'.")
        return _Term(field, op, ticks=ticks)
    if field not in STRING_FIELDS:
        raise _bad_request(
            f"Could not find a property named '{field[:40]}' on type 'microsoft.graph.security.alert'."
        )
    if op not in ("eq", "ne"):
        raise _bad_request(f"The operator '{op}' is not supported for the property '{field}'.")
    if value == "null":
        return _Term(field, op, text=None)
    if not value.startswith("'"):
        raise _bad_request(f"'{value[:40]}' is not a string literal; quote it for '{field}'.")
    text = value[1:-1].replace("''", "'")
    members = ENUMS.get(field)
    if members is not None and text not in members:
        raise _bad_request(f"The string '{text[:40]}' is not a valid enumerated type constant for '{field}'.")
    return _Term(field, op, text=text)


def _parse_filter(text: str) -> tuple[_Term, ...]:
    terms: list[_Term] = []
    position = 0
    while True:
        match = _TERM.match(text, position)
        if match is None:
            raise _bad_request(f"Invalid filter clause '{text[position : position + 80].strip()}'.")
        terms.append(_parse_term(match))
        position = match.end()
        if position == len(text):
            return tuple(terms)
        joiner = _AND.match(text, position)
        if joiner is None:
            raise _bad_request(f"Invalid filter clause '{text[position : position + 80].strip()}'.")
        position = joiner.end()


def _int_option(options: dict[str, str], name: str, default: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise _bad_request(f"Invalid value '{raw[:20]}' for query option '{name}'.")
    return int(raw)


def _list_options(query: dict[str, list[str]]) -> _ListOptions:
    options: dict[str, str] = {}
    for name, values in query.items():
        if not name.startswith("$"):
            continue
        if name not in _LIST_OPTIONS:
            raise _bad_request(f"Query option '{name[:40]}' is not supported on this resource.")
        if len(values) != 1:
            raise _bad_request(f"Query option '{name}' was specified more than once.")
        options[name] = values[0]
    terms = _parse_filter(options["$filter"]) if "$filter" in options else ()
    order_field, descending = "createdDateTime", True
    if "$orderby" in options:
        order = _ORDERBY.fullmatch(options["$orderby"])
        if order is None or order["field"] not in DATE_FIELDS:
            raise _bad_request(f"Ordering by '{options['$orderby'][:40]}' is not supported.")
        order_field, descending = order["field"], order["dir"] == "desc"
    top = min(_int_option(options, "$top", MAX_TOP), MAX_TOP)
    skip = _int_option(options, "$skip", 0)
    if top < 1:
        raise _bad_request("The value of '$top' must be at least 1.")
    if top + skip > MAX_TOP_PLUS_SKIP:
        raise _bad_request(f"The sum of $top and $skip must not exceed {MAX_TOP_PLUS_SKIP}.")
    count = options.get("$count", "false").lower()
    if count not in ("true", "false"):
        raise _bad_request(f"Invalid value '{count[:20]}' for query option '$count'.")
    return _ListOptions(terms, order_field, descending, top, skip, count == "true", options)


def _prefers_unknown_enums(request: Request) -> bool:
    prefer = request.headers.get("prefer", "")
    return any(part.strip().lower() == PREFER_UNKNOWN_ENUMS for part in prefer.split(","))


class GraphSimulator(HttpSimulator):
    """A Graph tenant on 127.0.0.1 serving `security/alerts_v2`; alerts appear per a scenario
    clock, tokens expire per wall time. Routes are counted in `requests` as "POST /token",
    "GET /v1.0/security/alerts_v2" and "GET /v1.0/security/alerts_v2/{id}".
    """

    name = "graph-simulator"

    def __init__(
        self,
        *,
        tenant_id: str = "sim-tenant",
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",  # noqa: S107 - a fixed credential of a local fake
        token_ttl_seconds: int = 3599,
        clock: Callable[[], datetime] = utc_now,
        audiences: Collection[str] = GRAPH_AUDIENCES,
        rate_limit_per_minute: int | None = None,
    ) -> None:
        if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be at least 1 (or None for no limit)")
        super().__init__(clock)
        self.entra = EntraTenant(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            token_ttl_seconds=token_ttl_seconds,
            clock=clock,
        )
        self.audiences = frozenset(audiences)
        self.rate_limit_per_minute = rate_limit_per_minute
        self._calls: collections.deque[float] = collections.deque()
        self._alerts = AlertVersions()
        self._raw: dict[str, _RawRecord] = {}
        self._auth_failure = TokenCheck.MISSING

    # -- the vendor's shape ----------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            self.entra.route("POST /token"),
            Route("GET", rf"{ALERTS_PATH}/?", LISTING, self._list_alerts, listing=True),
            Route("GET", rf"{ALERTS_PATH}/(?P<id>[^/]+)", f"{LISTING}/{{id}}", self._get_alert),
        ]

    def authenticated(self, request: Request) -> bool:
        check = self.entra.check(request.headers.get("authorization", ""), self.audiences)
        # Handlers run under the simulator lock, so the reason is read back by the same request.
        self._auth_failure = check
        return check is TokenCheck.VALID

    def unauthorized(self) -> Reply:
        message = _UNAUTHORIZED.get(self._auth_failure, _UNAUTHORIZED[TokenCheck.UNKNOWN])
        return graph_error(
            401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": 'Bearer realm=""'}
        )

    def throttled(self, retry_after_seconds: int) -> Reply:
        return graph_error(
            429, "TooManyRequests", "Too many requests.", headers={"Retry-After": str(retry_after_seconds)}
        )

    def failed(self, status: int) -> Reply:
        code = _FAULT_CODES.get(status, "generalException" if status >= 500 else "BadRequest")
        return graph_error(
            status, code, "An unspecified error has occurred." if status >= 500 else "Injected."
        )

    def not_found(self, request: Request) -> Reply:
        if request.path.lower().startswith("/v1.0/"):
            segment = request.path.rstrip("/").rsplit("/", 1)[-1][:60]
            return graph_error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        return graph_error(404, "NotFound", f"Resource {request.path[:100]} was not found.")

    # -- scenario control ------------------------------------------------------------------

    def add_alert(self, alert: dict[str, Any], visible_at: datetime | None = None) -> None:
        """Serve `alert` once clock() >= visible_at (default: its lastUpdateDateTime); same id = update."""
        alert_id = alert.get("id")
        if not isinstance(alert_id, str) or not alert_id:
            raise ValueError("alert needs a non-empty string 'id'")
        updated = alert.get("lastUpdateDateTime")
        ticks = timestamp_ticks(updated) if isinstance(updated, str) else None
        if ticks is None:
            raise ValueError(f"alert {alert_id} needs an ISO-8601 'lastUpdateDateTime'")
        if visible_at is None:
            # Truncating to microseconds can only make the alert visible up to 100 ns early.
            visible_at = _EPOCH + timedelta(microseconds=ticks // 10)
        require_aware(visible_at, "visible_at")
        stored = {**alert}
        stored.setdefault("evidence", [])
        with self.lock:
            self._alerts.add(alert_id, stored, visible_at)

    def update_alert(self, alert_id: str, at: datetime, **changes: Any) -> None:
        """A vendor-side change to `alert_id`, stamped (`lastUpdateDateTime`) and visible from `at`.

        Resolving (`status="resolved"`) also stamps `resolvedDateTime` unless it is given.
        """
        require_aware(at, "at")
        if "id" in changes:
            raise ValueError("an update cannot change the alert id")
        with self.lock:
            updated = self._alerts.latest(alert_id)
            if updated is None:
                raise KeyError(alert_id)
            updated.update(changes)
            updated["lastUpdateDateTime"] = graph_timestamp(at)
            if changes.get("status") == "resolved" and "resolvedDateTime" not in changes:
                updated["resolvedDateTime"] = graph_timestamp(at)
            self._alerts.add(alert_id, updated, at)

    def add_raw(self, raw: Any, visible_at: datetime, sort_time: datetime) -> None:
        """Serve `raw` exactly as given inside listings once clock() >= visible_at.

        The server files a malformed record under `sort_time` for both date fields (filters and
        `$orderby`); string filters read its fields when it is an object.
        """
        require_aware(visible_at, "visible_at")
        with self.lock:
            key = f"~raw-{len(self._raw):06d}"
            self._raw[key] = _RawRecord(copy.deepcopy(raw), visible_at, datetime_ticks(sort_time))

    def expire_tokens(self) -> None:
        with self.lock:
            self.entra.expire_all()

    # -- request handling ------------------------------------------------------------------

    def _meter(self) -> None:
        """Graph throttling: at most `rate_limit_per_minute` API calls in any 60 s (wall time)."""
        if self.rate_limit_per_minute is None:
            return
        now = time.monotonic()
        while self._calls and now - self._calls[0] >= 60.0:
            self._calls.popleft()
        if len(self._calls) >= self.rate_limit_per_minute:
            wait = max(1, math.ceil(60.0 - (now - self._calls[0])))
            raise ReplyError(self.throttled(wait))
        self._calls.append(now)

    def _render(self, alert: dict[str, Any], unknown_enums: bool) -> dict[str, Any]:
        if unknown_enums:
            return alert
        hidden = {
            field: "unknownFutureValue"
            for field, members in _EVOLVABLE.items()
            if alert.get(field) in members
        }
        return {**alert, **hidden} if hidden else alert

    def _headers(self, unknown_enums: bool) -> dict[str, str]:
        return {"Preference-Applied": PREFER_UNKNOWN_ENUMS} if unknown_enums else {}

    def _rows(self, options: _ListOptions) -> list[tuple[int, str, Any, bool]]:
        """(sort ticks, tie-break key, record, is raw) of every visible record the filter keeps."""
        now = self.clock()
        rows: list[tuple[int, str, Any, bool]] = []
        for alert in self._alerts.all_visible(now):
            if all(term.matches(alert, None) for term in options.terms):
                ticks = _value_ticks(alert, options.order_field)
                rows.append((-1 if ticks is None else ticks, alert["id"], alert, False))
        for key, raw in self._raw.items():
            if now < raw.visible_at:
                continue
            fields = raw.record if isinstance(raw.record, dict) else {}
            if all(term.matches(fields, raw.sort_ticks) for term in options.terms):
                rows.append((raw.sort_ticks, key, raw.record, True))
        # The id breaks ties so that $skip pages are stable between calls.
        rows.sort(key=lambda row: (row[0], row[1]), reverse=options.descending)
        return rows

    def _list_alerts(self, request: Request, _params: dict[str, str]) -> Reply:
        self._meter()
        options = _list_options(request.query)
        unknown_enums = _prefers_unknown_enums(request)
        rows = self._rows(options)
        end = options.skip + options.top
        page = [
            record if is_raw else self._render(record, unknown_enums)
            for _, _, record, is_raw in rows[options.skip : end]
        ]
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/v1.0/$metadata#security/alerts_v2"}
        if options.count:
            body["@odata.count"] = len(rows)
        if end < len(rows):
            body["@odata.nextLink"] = self._next_link(options, end)
        body["value"] = self.shape_page(LISTING, page)
        return Reply.json(200, body, content_type=_CONTENT_TYPE, headers=self._headers(unknown_enums))

    def _next_link(self, options: _ListOptions, skip: int) -> str:
        query = {**options.echo, "$top": str(options.top), "$skip": str(skip)}
        ordered = [name for name in ("$filter", "$orderby", "$top", "$skip", "$count") if name in query]
        quoted = {name: quote_plus(query[name], safe="'") for name in ordered}
        encoded = "&".join(f"{name}={quoted[name]}" for name in ordered)
        return f"{self.base_url}{ALERTS_PATH}?{encoded}"

    def _get_alert(self, request: Request, params: dict[str, str]) -> Reply:
        self._meter()
        alert = self._alerts.visible(params["id"], self.clock())
        if alert is None:
            raise ReplyError(graph_error(404, "NotFound", f"Alert '{params['id'][:100]}' was not found."))
        unknown_enums = _prefers_unknown_enums(request)
        body = {
            "@odata.context": f"{self.base_url}/v1.0/$metadata#security/alerts_v2/$entity",
            **self._render(alert, unknown_enums),
        }
        return Reply.json(200, body, content_type=_CONTENT_TYPE, headers=self._headers(unknown_enums))
