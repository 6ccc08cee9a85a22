"""needle.sources.http: Entra client-credentials tokens and `send` retries, over httpx.MockTransport."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest

from needle.sources.http import EntraClientCredentials, RetryPolicy, VendorApiError, send

pytestmark = pytest.mark.unit

LOGIN = "https://login.microsoftonline.test"
API = "https://api.securitycenter.test"
TENANT = "3e8a1f5c-7b2d-4c90-a6e4-0d9b8c7a6f51"
CLIENT_ID = "needle-poller"
SECRET = "Qx8~hT3.vK9_secret-value-do-not-log"
SCOPE = "https://api.securitycenter.microsoft.com/.default"

Step = httpx.Response | httpx.TransportError


class FakeEntraAndApi:
    """One MockTransport handler: an Entra token endpoint and a scripted vendor API."""

    def __init__(self, script: list[Step], *, token_status: int = 200, expires_in: int = 3599) -> None:
        self.script = list(script)
        self.token_status = token_status
        self.expires_in = expires_in
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/{TENANT}/oauth2/v2.0/token":
            self.token_requests.append(request)
            if self.token_status != 200:
                return httpx.Response(
                    self.token_status,
                    json={
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret",
                    },
                )
            return httpx.Response(
                200,
                json={
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                    "access_token": f"token-{len(self.token_requests)}",
                },
            )
        self.api_requests.append(request)
        step = self.script.pop(0)
        if isinstance(step, httpx.TransportError):
            raise step
        return step

    def bearer_tokens(self) -> list[str]:
        return [r.headers["Authorization"] for r in self.api_requests]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(server: FakeEntraAndApi, clock: Clock) -> tuple[httpx.Client, EntraClientCredentials]:
    http = httpx.Client(transport=httpx.MockTransport(server), trust_env=False)
    tokens = EntraClientCredentials(
        http=http,
        login_base_url=LOGIN + "/",
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        scope=SCOPE,
        clock=clock,
    )
    return http, tokens


def get_alerts(token: str) -> httpx.Request:
    return httpx.Request("GET", f"{API}/api/alerts", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def sleeps() -> list[float]:
    return []


def ok() -> httpx.Response:
    return httpx.Response(200, json={"value": []})


DEFAULT_POLICY = RetryPolicy()


def run(
    server: FakeEntraAndApi, clock: Clock, sleeps: list[float], policy: RetryPolicy = DEFAULT_POLICY
) -> httpx.Response:
    http, tokens = make(server, clock)
    return send(http, get_alerts, tokens, policy=policy, sleep=sleeps.append)


# --- tokens -------------------------------------------------------------------------------


def test_token_request_is_a_client_credentials_grant(clock: Clock) -> None:
    server = FakeEntraAndApi([])
    _, tokens = make(server, clock)

    assert tokens.token() == "token-1"

    [request] = server.token_requests
    assert request.method == "POST"
    assert str(request.url) == f"{LOGIN}/{TENANT}/oauth2/v2.0/token"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [SECRET],
        "scope": [SCOPE],
    }


def test_token_is_cached_and_reused(clock: Clock, sleeps: list[float]) -> None:
    # GIVEN one credentials object shared by two requests
    server = FakeEntraAndApi([ok(), ok()])
    http, tokens = make(server, clock)
    # WHEN two requests are sent
    send(http, get_alerts, tokens, sleep=sleeps.append)
    clock.now += 600
    send(http, get_alerts, tokens, sleep=sleeps.append)
    # THEN one token was fetched and both requests carried it
    assert len(server.token_requests) == 1
    assert server.bearer_tokens() == ["Bearer token-1", "Bearer token-1"]


def test_token_is_refreshed_a_minute_before_it_expires(clock: Clock) -> None:
    # GIVEN a token that lives 3600 s
    server = FakeEntraAndApi([], expires_in=3600)
    _, tokens = make(server, clock)
    assert tokens.token() == "token-1"
    # WHEN the clock nears expiry, THEN it is reused until 60 s before and refreshed from then on
    clock.now += 3539
    assert tokens.token() == "token-1"
    clock.now += 1
    assert tokens.token() == "token-2"
    assert tokens.token() == "token-2"
    assert len(server.token_requests) == 2


def test_token_request_refused_hides_the_secret(clock: Clock, sleeps: list[float]) -> None:
    # GIVEN an Entra endpoint that rejects the client secret
    server = FakeEntraAndApi([ok()], token_status=401)
    # WHEN a request needs a token
    with pytest.raises(VendorApiError) as caught:
        run(server, clock, sleeps)
    # THEN the error names the status, never the secret, and no API call was made
    assert caught.value.status == 401
    assert "token request refused" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert all(SECRET not in str(arg) for arg in caught.value.args)
    assert server.api_requests == []


# --- send ----------------------------------------------------------------------------------


def test_success_returns_the_response_without_sleeping(clock: Clock, sleeps: list[float]) -> None:
    server = FakeEntraAndApi([httpx.Response(200, json={"value": [{"id": "a"}]})])

    response = run(server, clock, sleeps)

    assert response.json() == {"value": [{"id": "a"}]}
    assert sleeps == []


def test_401_refreshes_the_token_once_then_succeeds(clock: Clock, sleeps: list[float]) -> None:
    # GIVEN an API that rejects the first (revoked) token
    server = FakeEntraAndApi([httpx.Response(401), ok()])
    # WHEN a request is sent
    response = run(server, clock, sleeps)
    # THEN a new token was fetched and the retry carried it, without backoff
    assert response.status_code == 200
    assert len(server.token_requests) == 2
    assert server.bearer_tokens() == ["Bearer token-1", "Bearer token-2"]
    assert sleeps == []


def test_401_twice_is_an_error_after_one_refresh(clock: Clock, sleeps: list[float]) -> None:
    server = FakeEntraAndApi([httpx.Response(401), httpx.Response(401), ok()])

    with pytest.raises(VendorApiError) as caught:
        run(server, clock, sleeps)

    assert caught.value.status == 401
    assert len(server.token_requests) == 2
    assert len(server.api_requests) == 2


def test_429_waits_for_retry_after_seconds(clock: Clock, sleeps: list[float]) -> None:
    throttled = httpx.Response(
        429,
        headers={"Retry-After": "7"},
        json={"error": {"code": "TooManyRequests", "message": "Quota reached"}},
    )
    server = FakeEntraAndApi([throttled, ok()])

    response = run(server, clock, sleeps)

    assert response.status_code == 200
    assert sleeps == [7.0]


def test_429_honours_retry_after_as_an_http_date(clock: Clock, sleeps: list[float]) -> None:
    throttled = httpx.Response(429, headers={"Retry-After": "Mon, 12 May 2025 14:10:30 GMT"})
    server = FakeEntraAndApi([throttled, ok()])
    http, tokens = make(server, clock)

    send(
        http,
        get_alerts,
        tokens,
        sleep=sleeps.append,
        now=lambda: datetime(2025, 5, 12, 14, 10, 0, tzinfo=UTC),
    )

    assert sleeps == [30.0]


def test_5xx_is_retried_with_bounded_backoff(clock: Clock, sleeps: list[float]) -> None:
    # GIVEN an API that fails twice with server errors
    server = FakeEntraAndApi([httpx.Response(503), httpx.Response(500), ok()])
    policy = RetryPolicy(attempts=5, base_delay=0.5, max_delay=30.0)
    # WHEN a request is sent
    response = run(server, clock, sleeps, policy)
    # THEN it succeeds on the third attempt after two jittered waits within the exponential caps
    assert response.status_code == 200
    assert len(server.api_requests) == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5
    assert 0 <= sleeps[1] <= 1.0


def test_retries_exhausted_raise_with_the_last_status(clock: Clock, sleeps: list[float]) -> None:
    server = FakeEntraAndApi(
        [
            httpx.Response(503),
            httpx.Response(503),
            httpx.Response(502, json={"error": {"code": "BadGateway"}}),
        ]
    )

    with pytest.raises(VendorApiError, match="gave up after 3 attempts") as caught:
        run(server, clock, sleeps, RetryPolicy(attempts=3))

    assert caught.value.status == 502
    assert "BadGateway" in str(caught.value)
    assert len(server.api_requests) == 3
    assert len(sleeps) == 2


def test_400_fails_at_once_without_retry(clock: Clock, sleeps: list[float]) -> None:
    # GIVEN an API that rejects the OData query (and would succeed if asked again)
    bad = httpx.Response(
        400,
        json={"error": {"code": "ODataError", "message": "Invalid filter clause", "target": "43f4cb08"}},
    )
    server = FakeEntraAndApi([bad, ok()])
    # WHEN the request is sent
    with pytest.raises(VendorApiError) as caught:
        run(server, clock, sleeps)
    # THEN it fails with the status and the vendor's code, with one call and no waiting
    assert caught.value.status == 400
    assert str(caught.value) == "HTTP 400 ODataError"
    assert len(server.api_requests) == 1
    assert sleeps == []


def test_transport_error_is_retried(clock: Clock, sleeps: list[float]) -> None:
    server = FakeEntraAndApi([httpx.ConnectError("connection reset"), httpx.ReadTimeout("slow"), ok()])

    response = run(server, clock, sleeps)

    assert response.status_code == 200
    assert len(server.api_requests) == 3
    assert len(sleeps) == 2


def test_transport_errors_exhausted_raise_vendor_api_error(clock: Clock, sleeps: list[float]) -> None:
    server = FakeEntraAndApi([httpx.ConnectError("down"), httpx.ConnectError("down")])

    with pytest.raises(VendorApiError, match="transport error after 2 attempts: ConnectError") as caught:
        run(server, clock, sleeps, RetryPolicy(attempts=2))

    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_requests_are_rebuilt_with_the_current_token(clock: Clock, sleeps: list[float]) -> None:
    # GIVEN a 401 followed by throttling: each attempt must build a fresh request
    server = FakeEntraAndApi([httpx.Response(401), httpx.Response(429, headers={"Retry-After": "1"}), ok()])
    built: list[str] = []
    http, tokens = make(server, clock)

    def build(token: str) -> httpx.Request:
        built.append(token)
        return get_alerts(token)

    send(http, build, tokens, sleep=sleeps.append)

    assert built == ["token-1", "token-2", "token-2"]
