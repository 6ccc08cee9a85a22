"""Microsoft Defender for Endpoint, MDE API `GET /api/alerts`."""
