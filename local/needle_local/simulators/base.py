"""What every EDR simulator shares: an HTTP server on 127.0.0.1, routing, versioned alerts that
appear on a scenario clock, and fault knobs (latency, 5xx bursts, 429 storms, token expiry in
the middle of pagination, duplicated and out-of-order pages).

A vendor simulator subclasses HttpSimulator, lists its routes, and says how its vendor
authenticates and answers errors; everything else is here so all simulators fail alike.
"""

from __future__ import annotations

import collections
import copy
import json
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, unquote, urlsplit

_LOG = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    def form(self) -> dict[str, str]:
        """The form-encoded body, or {} when the body is not a form."""
        content_type = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return {}
        try:
            fields = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return {}
        return {name: values[0] for name, values in fields.items()}

    def json(self) -> Any:
        """The JSON body, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError):
            return None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return cls(status, json.dumps(payload).encode(), content_type, headers or {})


class ReplyError(Exception):
    """Carries an error reply out of a handler."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


Endpoint = Callable[[Request, dict[str, str]], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # full-match regex on the path; named groups become params
    template: str  # the key counted in `requests`, e.g. "GET /api/alerts"
    handler: Endpoint
    authenticated: bool = True
    listing: bool = False  # a paged alert listing: page faults (duplicate, shuffle) apply

    def match(self, request: Request) -> dict[str, str] | None:
        if request.method != self.method:
            return None
        found = re.fullmatch(self.pattern, request.path, flags=re.IGNORECASE)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


class Faults:
    """Fault knobs shared by every simulator. All counts are consumed by API calls only
    (never by token requests), in the order they were queued."""

    def __init__(self, seed: int = 7) -> None:
        self.latency_seconds = 0.0
        self._queue: collections.deque[tuple[int, int | None]] = collections.deque()
        self._token_budget: int | None = None
        self.duplicate_page_probability = 0.0
        self.shuffle_pages = False
        self._random = random.Random(seed)

    def fail_next(self, n: int, status: int = 500) -> None:
        """A 5xx (or any error) burst: the next n API calls answer `status`."""
        if n < 0 or not 400 <= status <= 599:
            raise ValueError("fail_next needs n >= 0 and an HTTP error status")
        self._queue.extend([(status, None)] * n)

    def throttle_next(self, n: int, retry_after_seconds: int = 1) -> None:
        """A 429 storm: the next n API calls are throttled with the vendor's retry signal."""
        if n < 0 or retry_after_seconds < 0:
            raise ValueError("throttle_next needs n >= 0 and retry_after_seconds >= 0")
        self._queue.extend([(429, retry_after_seconds)] * n)

    def expire_tokens_after(self, n: int) -> None:
        """Every token issued so far stops working after n more API calls (mid-pagination)."""
        self._token_budget = n

    def next_fault(self) -> tuple[int, int | None] | None:
        return self._queue.popleft() if self._queue else None

    def spend_token_call(self) -> bool:
        """Count one authenticated call; True when the issued tokens just expired."""
        if self._token_budget is None:
            return False
        if self._token_budget <= 0:
            self._token_budget = None
            return True
        self._token_budget -= 1
        return False

    def shape_page(self, rows: list[Any], previous: list[Any]) -> list[Any]:
        """Duplicated and out-of-order pages: repeat some of the previous page, shuffle rows."""
        out = list(rows)
        if previous and self._random.random() < self.duplicate_page_probability:
            out = previous[-max(1, len(previous) // 4) :] + out
        if self.shuffle_pages:
            self._random.shuffle(out)
        return out


class AlertVersions:
    """Every version of every alert, each visible from its own time; a read at `now` sees the
    newest visible version, as a vendor's eventually consistent read side does. Raw objects
    (malformed records) are kept under a synthetic id and served as they are."""

    def __init__(self) -> None:
        self._versions: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}

    def add(self, key: str, alert: dict[str, Any], visible_at: datetime) -> None:
        require_aware(visible_at, "visible_at")
        self._versions.setdefault(key, []).append((visible_at, copy.deepcopy(alert)))

    def latest(self, key: str) -> dict[str, Any] | None:
        versions = self._versions.get(key)
        if not versions:
            return None
        latest: dict[str, Any] = copy.deepcopy(versions[-1][1])
        return latest

    def visible(self, key: str, now: datetime) -> dict[str, Any] | None:
        versions: list[tuple[datetime, dict[str, Any]]] = self._versions.get(key, [])
        for visible_at, alert in reversed(versions):
            if now >= visible_at:
                found: dict[str, Any] = alert
                return found
        return None

    def all_visible(self, now: datetime) -> list[dict[str, Any]]:
        return [a for a in (self.visible(k, now) for k in self._versions) if a is not None]

    def keys(self) -> list[str]:
        return list(self._versions)

    def __len__(self) -> int:
        return len(self._versions)


class HttpSimulator:
    """Base of the vendor simulators: lifecycle, dispatch, fault injection, request counting."""

    name = "simulator"

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.faults = Faults()
        self.requests: collections.Counter[str] = collections.Counter()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._previous_page: dict[str, list[Any]] = {}

    # -- what a vendor simulator provides ---------------------------------------------------
    def routes(self) -> list[Route]:
        raise NotImplementedError

    def authenticated(self, request: Request) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        raise NotImplementedError

    def throttled(self, retry_after_seconds: int) -> Reply:
        raise NotImplementedError

    def failed(self, status: int) -> Reply:
        raise NotImplementedError

    def not_found(self, request: Request) -> Reply:
        return Reply.json(404, {"error": "not found"})

    def expire_tokens(self) -> None:
        """Invalidate every issued token now."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._base_url

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self._routes = self.routes()
        server = _Server(self)
        self._base_url = f"http://127.0.0.1:{server.server_port}"
        # A short poll interval keeps stop() quick; serve_forever checks for shutdown between polls.
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name=self.name, daemon=True
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the fault knobs, also reachable directly ------------------------------------------
    def fail_next(self, n: int, status: int = 500) -> None:
        with self.lock:
            self.faults.fail_next(n, status)

    def throttle_next(self, n: int, retry_after_seconds: int = 1) -> None:
        with self.lock:
            self.faults.throttle_next(n, retry_after_seconds)

    # -- paging helper for listings ---------------------------------------------------------
    def shape_page(self, listing: str, rows: list[Any]) -> list[Any]:
        """Apply the page faults to one listing page (call from a listing handler)."""
        shaped = self.faults.shape_page(rows, self._previous_page.get(listing, []))
        self._previous_page[listing] = rows
        return shaped

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        if self.faults.latency_seconds:
            time.sleep(self.faults.latency_seconds)
        # One lock per request keeps state changes and the JSON snapshot consistent; replies are
        # small and this is a test double, so serialising requests costs nothing that matters.
        with self.lock:
            for route in self._routes:
                params = route.match(request)
                if params is None:
                    continue
                self.requests[route.template] += 1
                try:
                    if route.authenticated:
                        self._gate(request)
                    return route.handler(request, params)
                except ReplyError as failure:
                    return failure.reply
            self.requests[f"{request.method} {request.path}"] += 1
            return self.not_found(request)

    def _gate(self, request: Request) -> None:
        """Injected faults first (they model the gateway), then the vendor's authentication."""
        fault = self.faults.next_fault()
        if fault is not None:
            status, retry_after = fault
            raise ReplyError(self.throttled(retry_after) if retry_after is not None else self.failed(status))
        if self.faults.spend_token_call():
            self.expire_tokens()
        if not self.authenticated(request):
            raise ReplyError(self.unauthorized())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, simulator: HttpSimulator) -> None:
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
        simulator = cast(_Server, self.server).simulator
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(Reply.json(413, {"error": "request body too large"}))
            return
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length > 0 else b"",
        )
        try:
            reply = simulator.handle(request)
        except Exception:
            # Logged without the request: bodies may carry client secrets.
            _LOG.exception("%s failed on %s %s", simulator.name, request.method, request.path[:100])
            reply = simulator.failed(500)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)
