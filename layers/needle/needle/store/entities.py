"""Entities table: vendor device ids and hostnames resolve to one entity id."""

from __future__ import annotations

import re
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, PutError

from needle.model.event import DeviceHints, iso
from needle.store.items import EntityItem


def normalize_hostname(hostname: str) -> str:
    """`FIN-WS-042.corp.example.com` -> `fin-ws-042`: EDRs disagree on FQDN vs short name."""
    short = hostname.strip().lower().split(".", 1)[0]
    return re.sub(r"[^a-z0-9_-]", "-", short)


class DynamoEntityResolver:
    """First alias found wins; a new device becomes `host:<short hostname>` (or
    `device:<source>:<id>` when the vendor gives no hostname) and its aliases are recorded."""

    def resolve(self, hints: DeviceHints, seen_at: datetime) -> str:
        aliases = _aliases(hints)
        if not aliases:
            raise ValueError("a record with neither device id nor hostname cannot be placed on a timeline")
        for alias in aliases:
            try:
                found = EntityItem.get(alias, "alias")
            except DoesNotExist:
                continue
            if found.entity_id:
                self._record(aliases, found.entity_id, seen_at)
                return found.entity_id
        if hints.hostname:
            entity_id = f"host:{normalize_hostname(hints.hostname)}"
        else:
            entity_id = f"device:{hints.source}:{hints.device_id}"
        return self._record(aliases, entity_id, seen_at)

    def _record(self, aliases: list[str], entity_id: str, seen_at: datetime) -> str:
        for alias in aliases:
            item = EntityItem(
                alias, "alias", entity_id=entity_id, first_seen=iso(seen_at), last_seen=iso(seen_at)
            )
            try:
                # Never re-point an alias that already exists: the first resolution is stable,
                # so a re-polled alert always lands on the same timeline key.
                item.save(condition=EntityItem.pk.does_not_exist())
            except PutError as exc:
                if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                    raise
        return entity_id


def _aliases(hints: DeviceHints) -> list[str]:
    out = []
    if hints.device_id:
        out.append(f"alias#{hints.source}-device:{hints.device_id.lower()}")
    if hints.hostname:
        out.append(f"alias#hostname:{normalize_hostname(hints.hostname)}")
    return out
