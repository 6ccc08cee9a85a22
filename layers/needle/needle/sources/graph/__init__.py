"""Microsoft Graph security API, `GET /v1.0/security/alerts_v2` (all Defender products)."""
