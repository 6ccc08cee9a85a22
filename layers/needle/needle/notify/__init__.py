"""Notifications to people (SNS)."""
