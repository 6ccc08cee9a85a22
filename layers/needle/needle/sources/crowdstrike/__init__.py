"""CrowdStrike Falcon, Alerts API v2 (`/alerts/queries/alerts/v2` + `/alerts/entities/alerts/v2`)."""
