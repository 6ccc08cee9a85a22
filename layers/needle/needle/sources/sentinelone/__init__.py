"""SentinelOne Management API v2.1 threats (`GET /web/api/v2.1/threats`)."""
