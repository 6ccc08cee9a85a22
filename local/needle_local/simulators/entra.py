"""A local Entra ID tenant: the client-credentials token endpoint the MDE and Graph simulators share.

`POST /{tenant}/oauth2/v2.0/token` with a form body (`grant_type=client_credentials`,
`client_id`, `client_secret`, `scope=<resource>/.default`) answers like login.microsoftonline.com:
200 `{"token_type":"Bearer","expires_in":…,"ext_expires_in":…,"access_token":…}`, or an AADSTS
error body. Tokens expire in wall time (`token_ttl_seconds`), never on the scenario clock, so a
scenario that jumps hours ahead does not log its pollers out.
"""

from __future__ import annotations

import enum
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from needle_local.simulators.base import Reply, ReplyError, Request, Route, utc_now

CONTENT_TYPE = "application/json; charset=utf-8"
TOKEN_PATTERN = r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token"


class TokenCheck(enum.Enum):
    """Why a bearer header was accepted or refused; APIs word their 401 from it."""

    VALID = "valid"
    MISSING = "missing"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    WRONG_AUDIENCE = "wrong_audience"


@dataclass(frozen=True)
class _Issued:
    expires_at: float  # time.monotonic()
    audience: str


def entra_error(status: int, error: str, code: int, message: str, now: datetime) -> ReplyError:
    """An AADSTS error reply, shaped like Entra's (fresh trace and correlation ids)."""
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
    return ReplyError(Reply.json(status, body, content_type=CONTENT_TYPE))


class EntraTenant:
    """One tenant with one app registration (client id + secret) that issues bearer tokens.

    A simulator adds `route()` to its routes and asks `check(authorization_header)` on every API
    call. Callers serialise access through the simulator lock; the tenant also locks its own
    token table so `expire_all()` is safe from a test thread.
    """

    def __init__(
        self,
        *,
        tenant_id: str = "sim-tenant",
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",  # noqa: S107 - a fixed credential of a local fake
        token_ttl_seconds: int = 3599,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if token_ttl_seconds < 0:
            raise ValueError("token_ttl_seconds must not be negative")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._client_secret = client_secret
        self._token_ttl = token_ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Issued] = {}

    def route(self, template: str = "POST /token") -> Route:
        return Route("POST", TOKEN_PATTERN, template, self.issue, authenticated=False)

    def expire_all(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self._tokens.clear()

    def check(self, authorization: str, audiences: Collection[str] | None = None) -> TokenCheck:
        """Validate an `Authorization` header; `audiences` (None: any) are the accepted resources."""
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return TokenCheck.MISSING
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None:
                return TokenCheck.UNKNOWN
            if time.monotonic() >= issued.expires_at:
                del self._tokens[token]
                return TokenCheck.EXPIRED
        if audiences is not None and issued.audience not in audiences:
            return TokenCheck.WRONG_AUDIENCE
        return TokenCheck.VALID

    def valid(self, authorization: str, audiences: Collection[str] | None = None) -> bool:
        return self.check(authorization, audiences) is TokenCheck.VALID

    def issue(self, request: Request, params: dict[str, str]) -> Reply:
        """The token endpoint handler."""
        now = self._clock()
        form = request.form()
        if params["tenant"] != self.tenant_id:
            raise entra_error(
                400, "invalid_request", 90002, f"Tenant '{params['tenant'][:64]}' not found.", now
            )
        for name in ("grant_type", "client_id"):
            if not form.get(name):
                message = f"The request body must contain the following parameter: '{name}'."
                raise entra_error(400, "invalid_request", 900144, message, now)
        if form["grant_type"] != "client_credentials":
            raise entra_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.", now
            )
        if form["client_id"] != self.client_id:
            message = (
                f"Application with identifier '{form['client_id'][:64]}' was not found in the directory."
            )
            raise entra_error(400, "unauthorized_client", 700016, message, now)
        secret = form.get("client_secret", "")
        if not secrets.compare_digest(secret.encode(), self._client_secret.encode()):
            # The description never repeats the secret that was sent.
            raise entra_error(401, "invalid_client", 7000215, "Invalid client secret provided.", now)
        scope = form.get("scope", "")
        if not scope:
            raise entra_error(400, "invalid_request", 90014, "The required field 'scope' is missing.", now)
        if not scope.endswith("/.default"):
            message = "The client-credentials flow requires a scope ending in '/.default'."
            raise entra_error(400, "invalid_scope", 1002012, message, now)
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = _Issued(time.monotonic() + self._token_ttl, scope[: -len("/.default")])
        body = {
            "token_type": "Bearer",
            "expires_in": self._token_ttl,
            "ext_expires_in": self._token_ttl,
            "access_token": token,
        }
        return Reply.json(200, body, content_type=CONTENT_TYPE)
