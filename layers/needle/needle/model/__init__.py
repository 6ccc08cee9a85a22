"""Needle's domain types: the normalized event, ATT&CK vocabulary, incidents."""
