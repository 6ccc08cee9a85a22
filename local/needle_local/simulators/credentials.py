"""The credentials every simulator accepts by default, as the template's secrets hold them."""

from __future__ import annotations

from needle_local.simulators.sentinelone import DEFAULT_TOKEN

ENTRA = {"tenant_id": "sim-tenant", "client_id": "sim-client", "client_secret": "sim-secret"}

# Secret logical id in template.yaml -> the JSON the simulator of that source accepts.
SIM_SECRETS: dict[str, dict[str, str]] = {
    "MdeCredentials": ENTRA,
    "GraphCredentials": ENTRA,
    "CrowdStrikeCredentials": {"client_id": "sim-client", "client_secret": "sim-secret"},
    "SentinelOneCredentials": {"api_token": DEFAULT_TOKEN},
}
SECRET_OF = {
    "mde": "MdeCredentials",
    "graph": "GraphCredentials",
    "crowdstrike": "CrowdStrikeCredentials",
    "sentinelone": "SentinelOneCredentials",
}
