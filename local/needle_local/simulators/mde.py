"""Local Microsoft Defender for Endpoint API simulator: Entra tokens, alerts, isolation, faults."""

from __future__ import annotations

import collections
import copy
import json
import logging
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

MAX_TOP = 10_000
ISOLATION_TYPES = frozenset({"Full", "Selective", "UnManagedDevice"})
# Filterable date fields; the real API accepts more properties, but only these drive polling.
FILTER_FIELDS = frozenset({"lastUpdateTime", "alertCreationTime"})

_LOG = logging.getLogger(__name__)
_MAX_BODY_BYTES = 1 << 20
_TICKS_PER_SECOND = 10_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_API_CONTENT_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
_ENTRA_CONTENT_TYPE = "application/json; charset=utf-8"
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


def _utc_now() -> datetime:
    return datetime.now(UTC)


def mde_timestamp(moment: datetime) -> str:
    """`moment` as MDE writes it: UTC, seven fractional digits, `Z`."""
    _require_aware(moment, "moment")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


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


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = _API_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        *,
        content_type: str = _API_CONTENT_TYPE,
        headers: dict[str, str] | None = None,
    ) -> _Reply:
        return cls(status, json.dumps(payload).encode(), content_type, headers or {})


class _ReplyError(Exception):
    """Carries an error reply out of a handler."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _api_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> _Reply:
    # Every MDE error names a fresh correlation id in `target`.
    body = {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}
    return _Reply.json(status, body, headers=headers)


def _odata_error(message: str) -> _ReplyError:
    return _ReplyError(_api_error(400, "ODataError", message))


@dataclass(frozen=True)
class _Term:
    field: str
    op: str
    ticks: int

    def matches(self, alert: Mapping[str, Any]) -> bool:
        value = alert.get(self.field)
        ticks = timestamp_ticks(value) if isinstance(value, str) else None
        return ticks is not None and _COMPARE[self.op](ticks, self.ticks)


@dataclass(frozen=True)
class _ListOptions:
    terms: tuple[_Term, ...]
    top: int
    skip: int
    expand: bool


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


def _entra_error(status: int, error: str, code: int, message: str, now: datetime) -> _ReplyError:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
    }
    return _ReplyError(_Reply.json(status, body, content_type=_ENTRA_CONTENT_TYPE))


def _form(request: _Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        fields = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {name: values[0] for name, values in fields.items()}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict):
        raise _ReplyError(_api_error(400, "InvalidRequestBody", "Request body must be a JSON object."))
    return payload


_Endpoint = Callable[[_Request, dict[str, str]], _Reply]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    template: str
    handler: _Endpoint
    authenticated: bool = True


class MdeSimulator:
    """An MDE tenant on 127.0.0.1: alerts appear per a scenario clock, tokens expire per wall time."""

    def __init__(
        self,
        *,
        tenant_id: str = "sim-tenant",
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",  # noqa: S107 - a fixed credential of a local fake
        token_ttl_seconds: int = 3599,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if token_ttl_seconds < 0:
            raise ValueError("token_ttl_seconds must not be negative")
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._client_secret = client_secret
        self._token_ttl = token_ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._tokens: dict[str, float] = {}
        # Every version of an alert is kept so an update that is not yet visible leaves the
        # previous version served, as a vendor's eventually consistent read side does.
        self._versions: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
        self._faults: collections.deque[tuple[int, int | None]] = collections.deque()
        self._actions: dict[str, dict[str, Any]] = {}
        self.requests: collections.Counter[str] = collections.Counter()
        self.isolated: dict[str, dict[str, Any]] = {}
        self._routes = (
            _Route(
                "POST",
                re.compile(r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token"),
                "POST /token",
                self._token,
                False,
            ),
            _Route("GET", re.compile(r"/api/alerts/?", re.I), "GET /api/alerts", self._list_alerts),
            _Route(
                "GET", re.compile(r"/api/alerts/(?P<id>[^/]+)", re.I), "GET /api/alerts/{id}", self._get_alert
            ),
            _Route(
                "POST",
                re.compile(r"/api/machines/(?P<id>[^/]+)/isolate", re.I),
                "POST /api/machines/{id}/isolate",
                self._isolate,
            ),
            _Route(
                "GET",
                re.compile(r"/api/machineactions/(?P<id>[^/]+)", re.I),
                "GET /api/machineactions/{id}",
                self._get_machine_action,
            ),
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("MdeSimulator is not started")
        return self._base_url

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError("MdeSimulator is already started")
        server = _Server(self)
        self._base_url = f"http://127.0.0.1:{server.server_port}"
        # A short poll interval keeps stop() quick; serve_forever only checks for shutdown between polls.
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="mde-simulator", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self._base_url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> MdeSimulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

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
        _require_aware(visible_at, "visible_at")
        stored = copy.deepcopy(alert)
        stored.setdefault("evidence", [])
        with self._lock:
            self._versions.setdefault(alert_id, []).append((visible_at, stored))

    def update_alert(self, alert_id: str, at: datetime, **changes: Any) -> None:
        """A vendor-side change to `alert_id`, stamped and visible from `at`."""
        _require_aware(at, "at")
        if "id" in changes:
            raise ValueError("an update cannot change the alert id")
        with self._lock:
            versions = self._versions.get(alert_id)
            if not versions:
                raise KeyError(alert_id)
            updated = copy.deepcopy(versions[-1][1])
            updated.update(copy.deepcopy(changes))
            updated["lastUpdateTime"] = mde_timestamp(at)
            versions.append((at, updated))

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def fail_next(self, n: int, status: int = 500) -> None:
        if n < 0 or not 400 <= status <= 599:
            raise ValueError("fail_next needs n >= 0 and an HTTP error status")
        with self._lock:
            self._faults.extend([(status, None)] * n)

    def throttle_next(self, n: int, retry_after_seconds: int = 1) -> None:
        if n < 0 or retry_after_seconds < 0:
            raise ValueError("throttle_next needs n >= 0 and retry_after_seconds >= 0")
        with self._lock:
            self._faults.extend([(429, retry_after_seconds)] * n)

    # -- request handling ------------------------------------------------------------------

    def _handle(self, request: _Request) -> _Reply:
        # One lock for the whole request keeps state changes and the JSON snapshot consistent;
        # the replies are small and this is a test double, so serialising requests costs nothing.
        with self._lock:
            route, params = self._route(request)
            if route is None:
                self.requests[f"{request.method} {request.path}"] += 1
                return _api_error(404, "NotFound", f"Resource {request.path[:100]} was not found.")
            self.requests[route.template] += 1
            try:
                if route.authenticated:
                    self._gate(request)
                return route.handler(request, params)
            except _ReplyError as failure:
                return failure.reply

    def _route(self, request: _Request) -> tuple[_Route | None, dict[str, str]]:
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if match is not None and route.method == request.method:
                return route, {name: unquote(value) for name, value in match.groupdict().items()}
        return None, {}

    def _gate(self, request: _Request) -> None:
        """Injected faults first (they model the gateway), then the bearer token."""
        if self._faults:
            status, retry_after = self._faults.popleft()
            if retry_after is not None:
                raise _ReplyError(
                    _api_error(
                        429,
                        "TooManyRequests",
                        f"Rate limit is exceeded. Try again in {retry_after} seconds.",
                        headers={"Retry-After": str(retry_after)},
                    )
                )
            code = "InternalServerError" if status >= 500 else _FAULT_CODES.get(status, "BadRequest")
            raise _ReplyError(_api_error(status, code, "" if status >= 500 else "Injected failure."))
        if not self._token_valid(request.headers.get("authorization", "")):
            raise _ReplyError(
                _api_error(401, "Unauthorized", "Authorization header is missing, invalid or expired.")
            )

    def _token_valid(self, header: str) -> bool:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        expires_at = self._tokens.get(token.strip())
        if expires_at is None:
            return False
        if time.monotonic() >= expires_at:
            del self._tokens[token.strip()]
            return False
        return True

    def _token(self, request: _Request, params: dict[str, str]) -> _Reply:
        now = self._clock()
        form = _form(request)
        if params["tenant"] != self._tenant_id:
            raise _entra_error(
                400, "invalid_request", 90002, f"Tenant '{params['tenant'][:64]}' not found.", now
            )
        for name in ("grant_type", "client_id"):
            if not form.get(name):
                message = f"The request body must contain the following parameter: '{name}'."
                raise _entra_error(400, "invalid_request", 900144, message, now)
        if form["grant_type"] != "client_credentials":
            raise _entra_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.", now
            )
        if form["client_id"] != self._client_id:
            message = (
                f"Application with identifier '{form['client_id'][:64]}' was not found in the directory."
            )
            raise _entra_error(400, "unauthorized_client", 700016, message, now)
        secret = form.get("client_secret", "")
        if not secrets.compare_digest(secret.encode(), self._client_secret.encode()):
            # The description never repeats the secret that was sent.
            raise _entra_error(401, "invalid_client", 7000215, "Invalid client secret provided.", now)
        scope = form.get("scope", "")
        if not scope:
            raise _entra_error(400, "invalid_request", 90014, "The required field 'scope' is missing.", now)
        if not scope.endswith("/.default"):
            message = "The client-credentials flow requires a scope ending in '/.default'."
            raise _entra_error(400, "invalid_scope", 1002012, message, now)
        token = secrets.token_urlsafe(48)
        self._tokens[token] = time.monotonic() + self._token_ttl
        body = {
            "token_type": "Bearer",
            "expires_in": self._token_ttl,
            "ext_expires_in": self._token_ttl,
            "access_token": token,
        }
        return _Reply.json(200, body, content_type=_ENTRA_CONTENT_TYPE)

    def _visible(self, alert_id: str, now: datetime) -> dict[str, Any] | None:
        """The most recently added version of `alert_id` that is visible at `now`."""
        for visible_at, alert in self._versions.get(alert_id, [])[::-1]:
            if now >= visible_at:
                return alert
        return None

    def _render(self, alert: dict[str, Any], expand: bool) -> dict[str, Any]:
        return alert if expand else {**alert, "evidence": []}

    def _list_alerts(self, request: _Request, _params: dict[str, str]) -> _Reply:
        options = _list_options(request.query)
        now = self._clock()
        # Sorted by id only so $skip paging is stable; callers must not read time order into it.
        rows = []
        for alert_id in sorted(self._versions):
            alert = self._visible(alert_id, now)
            if alert is not None and all(term.matches(alert) for term in options.terms):
                rows.append(self._render(alert, options.expand))
        page = rows[options.skip : options.skip + options.top]
        return _Reply.json(200, {"@odata.context": f"{self.base_url}/api/$metadata#Alerts", "value": page})

    def _get_alert(self, request: _Request, params: dict[str, str]) -> _Reply:
        expand = _expand_evidence(_single_options(request.query, frozenset({"$expand"})))
        alert = self._visible(params["id"], self._clock())
        if alert is None:
            raise _ReplyError(
                _api_error(404, "ResourceNotFound", f"Alert {params['id'][:100]} was not found.")
            )
        body = {
            "@odata.context": f"{self.base_url}/api/$metadata#Alerts/$entity",
            **self._render(alert, expand),
        }
        return _Reply.json(200, body)

    def _machine(self, machine_id: str) -> dict[str, Any] | None:
        # A device exists once any alert names it, visible or not: devices precede their alerts.
        wanted = machine_id.lower()
        for versions in self._versions.values():
            alert = versions[-1][1]
            if str(alert.get("machineId", "")).lower() == wanted:
                return alert
        return None

    def _isolate(self, request: _Request, params: dict[str, str]) -> _Reply:
        body = _json_object(request.body)
        comment = body.get("Comment")
        if not isinstance(comment, str) or not comment.strip():
            raise _ReplyError(_api_error(400, "InvalidRequestBody", "Comment is required."))
        isolation = body.get("IsolationType", "Full")
        if not isinstance(isolation, str) or isolation not in ISOLATION_TYPES:
            message = "IsolationType must be one of Full, Selective, UnManagedDevice."
            raise _ReplyError(_api_error(400, "InvalidRequestBody", message))
        alert = self._machine(params["id"])
        if alert is None:
            raise _ReplyError(
                _api_error(404, "ResourceNotFound", f"Machine {params['id'][:100]} was not found.")
            )
        stamp = mde_timestamp(self._clock())
        action: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "type": "Isolate",
            "title": None,
            "requestor": self._client_id,
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
        return _Reply.json(201, self._action_body(action))

    def _get_machine_action(self, _request: _Request, params: dict[str, str]) -> _Reply:
        action = self._actions.get(params["id"])
        if action is None:
            raise _ReplyError(
                _api_error(404, "ResourceNotFound", f"MachineAction {params['id'][:100]} was not found.")
            )
        # The device acts between the request and the first status poll.
        if action["status"] == "Pending":
            action["status"] = "Succeeded"
            action["lastUpdateDateTimeUtc"] = mde_timestamp(self._clock())
        return _Reply.json(200, self._action_body(action))

    def _action_body(self, action: dict[str, Any]) -> dict[str, Any]:
        return {"@odata.context": f"{self.base_url}/api/$metadata#MachineActions/$entity", **action}


def _parse_visible(text: str) -> datetime:
    ticks = timestamp_ticks(text)
    if ticks is None:
        raise ValueError(f"not an ISO-8601 timestamp: {text[:40]!r}")
    # Truncating to microseconds can only make the alert visible up to 100 ns early.
    return _EPOCH + timedelta(microseconds=ticks // 10)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, simulator: MdeSimulator) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.simulator = simulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-response is normal for pollers under test; anything else is a bug.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections would otherwise pin a thread until the client closes.
    timeout = 10
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add ~40 ms a call.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        # Silenced: the default writes every request line to stderr.
        return

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY_BYTES:
            self.close_connection = True
            self._send(_api_error(413, "BadRequest", "Request body too large."))
            return
        split = urlsplit(self.path)
        request = _Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length > 0 else b"",
        )
        simulator = cast(_Server, self.server).simulator
        try:
            reply = simulator._handle(request)
        except Exception:
            # Logged without the request: bodies may carry client secrets.
            _LOG.exception("MDE simulator failed on %s %s", request.method, request.path[:100])
            reply = _api_error(500, "InternalServerError", "")
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)
