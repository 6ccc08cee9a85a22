"""Builds the AlertFeed of each EDR from its credentials and endpoints (one way for every caller:
the PollSource handler, the replay harness, the benchmarks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from needle.ingest.ports import AlertFeed
from needle.sources.crowdstrike.client import CrowdStrikeClient, FalconTokens
from needle.sources.crowdstrike.feed import CrowdStrikeFeed
from needle.sources.graph.client import GraphClient, graph_tokens
from needle.sources.graph.feed import GraphFeed
from needle.sources.http import EntraClientCredentials
from needle.sources.mde.client import SCOPE as MDE_SCOPE
from needle.sources.mde.client import MdeClient
from needle.sources.mde.feed import MdeFeed
from needle.sources.sentinelone.client import SentinelOneClient, StaticApiToken
from needle.sources.sentinelone.feed import SentinelOneFeed

SOURCES = ("mde", "graph", "crowdstrike", "sentinelone")


class SourceConfigError(ValueError):
    """A source's secret or endpoints are incomplete (names the missing key, never a value)."""


@dataclass(frozen=True)
class Endpoints:
    api_base_url: str
    login_base_url: str | None = None  # Entra ID authority (MDE, Graph)


def build_feed(source: str, secret: Mapping[str, str], endpoints: Endpoints, http: httpx.Client) -> AlertFeed:
    """The feed for `source`; `secret` is the parsed JSON of the source's Secrets Manager secret."""

    def need(key: str) -> str:
        value = secret.get(key)
        if not value:
            raise SourceConfigError(f"{source}: the credentials secret has no {key!r}")
        return value

    if source in ("mde", "graph"):
        if not endpoints.login_base_url:
            raise SourceConfigError(f"{source}: no Entra ID login URL configured")
        if source == "mde":
            tokens = EntraClientCredentials(
                http=http,
                login_base_url=endpoints.login_base_url,
                tenant_id=need("tenant_id"),
                client_id=need("client_id"),
                client_secret=need("client_secret"),
                scope=MDE_SCOPE,
            )
            return MdeFeed(MdeClient(http, endpoints.api_base_url, tokens))
        graph = graph_tokens(
            http, endpoints.login_base_url, need("tenant_id"), need("client_id"), need("client_secret")
        )
        return GraphFeed(GraphClient(http, endpoints.api_base_url, graph))
    if source == "crowdstrike":
        falcon = FalconTokens(
            http,
            endpoints.api_base_url,
            need("client_id"),
            need("client_secret"),
            secret.get("member_cid") or None,
        )
        return CrowdStrikeFeed(CrowdStrikeClient(http, endpoints.api_base_url, falcon))
    if source == "sentinelone":
        client = SentinelOneClient(http, endpoints.api_base_url, StaticApiToken(need("api_token")))
        return SentinelOneFeed(client, console_url=endpoints.api_base_url)
    raise SourceConfigError(f"unknown source {source!r}; expected one of {SOURCES}")
