"""HTTP plumbing shared by the vendor clients: bearer tokens, retries that honour the vendor's signal."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx


class VendorApiError(RuntimeError):
    """A vendor API answered with an error that retrying will not fix (or retries ran out)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenProvider(Protocol):
    def token(self) -> str: ...

    def invalidate(self) -> None: ...


@dataclass
class EntraClientCredentials:
    """Entra ID (Azure AD) client-credentials tokens, cached until shortly before they expire.

    One instance lives as long as the Lambda container, so warm invocations reuse the token.
    """

    http: httpx.Client
    login_base_url: str
    tenant_id: str
    client_id: str
    client_secret: str
    scope: str
    clock: Callable[[], float] = time.monotonic
    _token: str | None = None
    _expires_at: float = 0.0

    def token(self) -> str:
        if self._token is None or self.clock() >= self._expires_at:
            self._fetch()
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        self._token = None

    def _fetch(self) -> None:
        url = f"{self.login_base_url.rstrip('/')}/{self.tenant_id}/oauth2/v2.0/token"
        response = self.http.post(
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "scope": self.scope,
            },
        )
        if response.status_code != 200:
            # The body names the error code only; never echo the request (it holds the secret).
            raise VendorApiError(f"token request refused: HTTP {response.status_code}", response.status_code)
        body = response.json()
        lifetime = float(body.get("expires_in", 3599))
        self._token = str(body["access_token"])
        # Refresh a minute early so a token never expires in the middle of a page.
        self._expires_at = self.clock() + max(lifetime - 60.0, lifetime / 2)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0


def retry_after_seconds(response: httpx.Response, now: Callable[[], datetime]) -> float | None:
    """The wait a 429/503 asks for: `Retry-After` in seconds or as an HTTP date."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, (parsedate_to_datetime(value) - now()).total_seconds())
    except (TypeError, ValueError):
        return None


RetrySignal = Callable[[httpx.Response, Callable[[], datetime]], float | None]


def send(
    http: httpx.Client,
    request: Callable[[str], httpx.Request],
    tokens: TokenProvider,
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    retry_signal: RetrySignal = retry_after_seconds,
) -> httpx.Response:
    """Send an authenticated request (`request(token)` builds it), refreshing the token once on
    401 and retrying 429/5xx/transport errors with exponential backoff and full jitter. The wait
    the vendor asks for (`retry_signal`, by default the Retry-After header) overrides the backoff.
    """
    refreshed = False
    for attempt in range(1, policy.attempts + 1):
        try:
            response = http.send(request(tokens.token()))
        except httpx.TransportError as exc:
            if attempt == policy.attempts:
                raise VendorApiError(
                    f"transport error after {attempt} attempts: {type(exc).__name__}"
                ) from exc
            sleep(_backoff(policy, attempt))
            continue
        if response.status_code == 401 and not refreshed:
            tokens.invalidate()
            refreshed = True
            continue
        if response.status_code == 429 or response.status_code >= 500:
            if attempt == policy.attempts:
                break
            wait = retry_signal(response, now)
            sleep(min(policy.max_delay * 4, wait) if wait is not None else _backoff(policy, attempt))
            continue
        if response.status_code >= 400:
            raise VendorApiError(_describe(response), response.status_code)
        return response
    raise VendorApiError(
        f"gave up after {policy.attempts} attempts: {_describe(response)}", response.status_code
    )


def _backoff(policy: RetryPolicy, attempt: int) -> float:
    return random.uniform(0, min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)))


def _describe(response: httpx.Response) -> str:
    """Status and the vendor's error code: enough to act on, nothing from the payload itself."""
    code = ""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(error, dict):  # Microsoft: {"error": {"code": ...}}
            code = str(error.get("code", ""))[:64]
        elif isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code", ""))[:64]  # CrowdStrike, SentinelOne: {"errors": [...]}
    except ValueError:
        pass
    return f"HTTP {response.status_code} {code}".strip()
