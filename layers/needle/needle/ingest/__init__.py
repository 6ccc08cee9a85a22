"""Ingestion: polling vendor APIs into the Events table."""
