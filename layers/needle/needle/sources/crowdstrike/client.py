"""CrowdStrike Falcon client: OAuth2 tokens, Alerts v2 query + entities paging, host containment."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from needle.model.event import parse_time
from needle.sources.http import RetryPolicy, TokenProvider, VendorApiError, retry_after_seconds, send

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a credential
QUERY_PATH = "/alerts/queries/alerts/v2"
ENTITIES_PATH = "/alerts/entities/alerts/v2"
DEVICE_ACTIONS_PATH = "/devices/entities/devices-actions/v2"
USER_AGENT = "Needle/0.1 (crowdstrike-alerts)"

MAX_QUERY_LIMIT = 10_000  # documented maximum of `limit` on the query endpoint
OFFSET_WINDOW = 10_000  # offset paging stops here; the listing restarts from a newer time instead
DEFAULT_TOKEN_SECONDS = 1799.0  # "standard 30-minute lifespan"
RENEW_WINDOW_SECONDS = 120.0  # FalconPy's default renew window
MAX_SHIFT_RESTARTS = 5  # restarts in a row that yield nothing before the pass gives up
SORT = "updated_timestamp|asc"

# RFC 3339 as Falcon writes it, up to nanoseconds: compared exactly, because the cursor of a
# restart must not lose the digits Python's datetime drops.
_STAMP = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<tz>Z|z|[+-]\d{2}:\d{2})"
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FalconTokens:
    """OAuth2 client-credentials tokens from `POST /oauth2/token`, renewed `renew_window`
    seconds before they expire. One instance lives as long as the client (warm Lambdas reuse it).

    `region` reports the `X-Cs-Region` the token endpoint named; the configured base URL is kept
    (switching clouds is a deployment decision, not something a response may do).
    """

    http: httpx.Client
    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    member_cid: str | None = None
    renew_window: float = RENEW_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    region: str | None = None
    fetched: int = 0
    _token: str | None = field(default=None, repr=False)
    _expires_at: float = 0.0

    def token(self) -> str:
        if self._token is None or self.clock() >= self._expires_at:
            self._fetch()
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        self._token = None

    def _fetch(self) -> None:
        form = {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.member_cid:
            form["member_cid"] = self.member_cid
        response = self.http.post(
            self.base_url.rstrip("/") + TOKEN_PATH,
            data=form,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )
        # 201 is the documented success; a 200 from a proxy or mock carries the same body.
        if response.status_code not in (200, 201):
            # Status and vendor error code only: the request carried the secret.
            raise VendorApiError(
                f"CrowdStrike token request refused: {_describe(response)}", response.status_code
            )
        body = _json_object(response, "token response")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise VendorApiError("CrowdStrike token response has no access_token", response.status_code)
        try:
            lifetime = float(body.get("expires_in", DEFAULT_TOKEN_SECONDS))
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_SECONDS
        self.region = response.headers.get("X-Cs-Region") or self.region
        self._token = token
        self.fetched += 1
        # A token shorter-lived than twice the window is still used for half its life.
        self._expires_at = self.clock() + lifetime - min(self.renew_window, lifetime / 2)


def retry_signal(response: httpx.Response, now: Callable[[], datetime]) -> float | None:
    """The wait a 429 asks for. Falcon's `X-RateLimit-RetryAfter` is the Unix epoch second at
    which to retry (not a delay): seconds until then, floored at 0. Falls back to `Retry-After`."""
    value = response.headers.get("X-RateLimit-RetryAfter")
    if value is not None:
        try:
            return max(0.0, float(value) - now().timestamp())
        except ValueError:
            pass
    return retry_after_seconds(response, now)


@dataclass
class CrowdStrikeClient:
    """Alerts v2 in ascending `updated_timestamp` order, one page of full alerts per query page."""

    http: httpx.Client
    base_url: str
    tokens: TokenProvider
    page_size: int = 500
    offset_window: int = OFFSET_WINDOW
    entities_batch: int = 1000
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = _utc_now
    requests_made: int = 0

    def __post_init__(self) -> None:
        # Pages overlap by one position, so a page must hold at least two.
        if not 2 <= self.page_size <= MAX_QUERY_LIMIT:
            raise ValueError(f"page_size must be between 2 and {MAX_QUERY_LIMIT}")
        # A restart re-reads up to one page, so the window must hold at least two.
        if self.offset_window < 2 * self.page_size:
            raise ValueError("offset_window must hold at least two pages")
        if self.entities_batch < 1:
            raise ValueError("entities_batch must be positive")

    def alerts_updated(
        self, since: datetime, until: datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of full alerts with `since <= updated_timestamp (< until)`, ascending.

        `GET /alerts/queries/alerts/v2` pages composite ids (`offset`/`limit`, sorted by
        `updated_timestamp|asc`); `POST /alerts/entities/alerts/v2` turns each page into alerts.
        Each page is sorted by the alerts' own `updated_timestamp`: an alert updated between the
        two calls comes back newer than the query saw it and moves to the end of the page.

        The listing is live. An alert updated while it is read moves to the end, and every
        position behind it shifts down by one: plain offset paging would then skip the record at
        the seam. So each query overlaps the previous page by one position; if the two pages
        share no id, positions shifted and the listing restarts (see below). Ids the previous
        page already had are not fetched again.

        Offset paging also stops at the vendor's result window: before the next page would
        cross it, the listing restarts as well. A restart queries `updated_timestamp >= <oldest
        update time on the last page>` from offset 0 — the oldest rather than the newest,
        because an alert updated between query and entities call carries a time later than
        records not yet read. Versions already yielded from that page are dropped on the re-read.
        Other repeats reach the caller, which dedups on (id, update time).
        """
        lower = _fql_time(since)
        lower_ns = _stamp_ns(lower)
        upper = _fql_time(until) if until is not None else None
        offset = 0
        previous: set[str] | None = None  # ids of the previous page, for the overlap check
        fetched: list[Any] = []  # alerts read for the previous page (before dropping re-reads)
        reread: set[tuple[str, int]] = set()
        fruitless = 0
        while True:
            fql = f"updated_timestamp:>='{lower}'"
            if upper is not None:
                fql += f"+updated_timestamp:<'{upper}'"
            ids, total = self._query(fql, offset)
            if not ids:
                return
            if previous is not None:
                if previous.isdisjoint(ids):
                    fruitless += 1
                    if fruitless > MAX_SHIFT_RESTARTS:
                        raise VendorApiError("CrowdStrike listing keeps shifting under concurrent updates")
                    lower, lower_ns, reread = _restart_point(fetched, lower, lower_ns)
                    offset, previous = 0, None
                    continue
                new_ids = [i for i in ids if i not in previous]
            else:
                new_ids = ids
            fetched = _ascending(self._entities(new_ids)) if new_ids else []
            page = [a for a in fetched if _version(a) not in reread] if reread else fetched
            if page:
                fruitless = 0
            yield page
            if (total is not None and offset + self.page_size >= total) or len(ids) < self.page_size:
                return
            previous = set(ids)
            offset += self.page_size - 1
            if offset + self.page_size > self.offset_window:
                restart = _restart_point(fetched, lower, lower_ns)
                if lower_ns is not None and (restart[1] is None or restart[1] <= lower_ns):
                    raise VendorApiError(
                        f"CrowdStrike listing cannot advance: over {self.offset_window - self.page_size} "
                        "alerts share one updated_timestamp"
                    )
                lower, lower_ns, reread = restart
                offset, previous = 0, None

    def contain(self, device_id: str) -> list[str]:
        """Network-contain a host by its AID; returns the ids the API accepted (HTTP 202)."""
        return self._device_action("contain", device_id)

    def lift_containment(self, device_id: str) -> list[str]:
        return self._device_action("lift_containment", device_id)

    # -- calls -----------------------------------------------------------------------------

    def _query(self, fql: str, offset: int) -> tuple[list[str], int | None]:
        params: dict[str, str | int] = {
            "filter": fql,
            "sort": SORT,
            "offset": offset,
            "limit": self.page_size,
        }
        body = self._call("GET", QUERY_PATH, "alerts query", params=params)
        resources = body.get("resources") or []
        if not isinstance(resources, list):
            raise VendorApiError("CrowdStrike alerts query answered without a resources list")
        ids = [r for r in resources if isinstance(r, str) and r]
        meta = body.get("meta")
        pagination = meta.get("pagination") if isinstance(meta, dict) else None
        total = pagination.get("total") if isinstance(pagination, dict) else None
        return ids, total if isinstance(total, int) and not isinstance(total, bool) else None

    def _entities(self, ids: list[str]) -> list[Any]:
        alerts: list[Any] = []
        for start in range(0, len(ids), self.entities_batch):
            batch = ids[start : start + self.entities_batch]
            body = self._call("POST", ENTITIES_PATH, "alerts entities", json={"composite_ids": batch})
            resources = body.get("resources") or []
            if not isinstance(resources, list):
                raise VendorApiError("CrowdStrike alerts entities answered without a resources list")
            # Unknown shapes are passed on: the poller quarantines what cannot be normalized.
            alerts.extend(resources)
        return alerts

    def _device_action(self, action: str, device_id: str) -> list[str]:
        body = self._call(
            "POST",
            DEVICE_ACTIONS_PATH,
            f"device action {action}",
            params={"action_name": action},
            json={"ids": [device_id]},
        )
        resources = body.get("resources") or []
        return [r["id"] for r in resources if isinstance(r, dict) and isinstance(r.get("id"), str)]

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, str | int] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        url = self.base_url.rstrip("/") + path

        def build(token: str) -> httpx.Request:
            return self.http.build_request(
                method,
                url,
                params=params,
                json=json,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                },
            )

        self.requests_made += 1
        response = send(
            self.http,
            build,
            self.tokens,
            policy=self.policy,
            sleep=self.sleep,
            now=self.now,
            retry_signal=retry_signal,
        )
        body = _json_object(response, what)
        errors = body.get("errors")
        # Falcon can answer 2xx and still report a failure (e.g. a missing scope) in `errors`.
        if isinstance(errors, list) and errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            code = first.get("code")
            status = code if isinstance(code, int) and not isinstance(code, bool) else response.status_code
            raise VendorApiError(
                f"CrowdStrike {what} answered HTTP {response.status_code} with errors: code {status}", status
            )
        return body


def cursor_of(alert: dict[str, Any]) -> datetime:
    """The vendor update time that drives incremental polling."""
    return parse_time(alert.get("updated_timestamp"))


def _fql_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _stamp_ns(value: Any) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time, or None when it is not one."""
    if not isinstance(value, str):
        return None
    match = _STAMP.fullmatch(value.strip())
    if match is None:
        return None
    tz = match["tz"].upper()
    try:
        moment = datetime.fromisoformat(match["base"] + ("+00:00" if tz == "Z" else tz))
    except ValueError:
        return None
    fraction = (match["frac"] or "")[:9].ljust(9, "0")
    return int(moment.timestamp()) * 1_000_000_000 + int(fraction)


def _version(alert: Any) -> tuple[str, int] | None:
    if not isinstance(alert, dict):
        return None
    composite_id = alert.get("composite_id")
    stamp = _stamp_ns(alert.get("updated_timestamp"))
    return (composite_id, stamp) if isinstance(composite_id, str) and stamp is not None else None


def _ascending(alerts: list[Any]) -> list[Any]:
    """Stable sort by update time; records without one go first (they are quarantined anyway)."""
    keyed = [(_stamp_ns(a.get("updated_timestamp")) if isinstance(a, dict) else None, a) for a in alerts]
    keyed.sort(key=lambda pair: -1 if pair[0] is None else pair[0])
    return [alert for _, alert in keyed]


def _restart_point(
    fetched: list[Any], lower: str, lower_ns: int | None
) -> tuple[str, int | None, set[tuple[str, int]]]:
    """Where a restarted listing begins, and the versions it should not yield again."""
    oldest = _oldest(fetched)
    if oldest is None:
        return lower, lower_ns, set()  # nothing to anchor on: re-read from the current start
    return oldest[0], oldest[1], {v for v in map(_version, fetched) if v is not None}


def _oldest(page: list[Any]) -> tuple[str, int] | None:
    """The oldest (update time as written, its nanoseconds) on a page."""
    best: tuple[str, int] | None = None
    for alert in page:
        if not isinstance(alert, dict):
            continue
        text = alert.get("updated_timestamp")
        stamp = _stamp_ns(text)
        if isinstance(text, str) and stamp is not None and (best is None or stamp < best[1]):
            best = (text.strip(), stamp)
    return best


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise VendorApiError(
            f"CrowdStrike {what}: HTTP {response.status_code} body is not a JSON object", response.status_code
        )
    return body


def _describe(response: httpx.Response) -> str:
    """Status and the vendor's error code: enough to act on, nothing from the payload itself."""
    code = ""
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code", ""))[:16]
    except ValueError:
        pass
    return f"HTTP {response.status_code} {code}".strip()
