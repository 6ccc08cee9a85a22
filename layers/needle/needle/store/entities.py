"""Entities table: vendor device ids and hostnames resolve to one entity id; IPs are leases.

Items:
  pk "alias#<namespace>-device:<id>" / "alias#hostname:<short name>", sk "alias": entity_id
  pk "ip#<address>", sk "<entity_id>": first_seen, last_seen (a lease: who held the IP when)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from needle.model.event import DeviceHints, iso, parse_time
from needle.store.conditions import condition_failed
from needle.store.items import EntityItem

# A lease's last_seen is refreshed at most this often per container: one write per IP per hour
# instead of one per alert, at the price of leases that end up to an hour early.
LEASE_REFRESH = timedelta(hours=1)


def normalize_hostname(hostname: str) -> str:
    """`FIN-WS-042.corp.example.com` -> `fin-ws-042`: EDRs disagree on FQDN vs short name."""
    short = hostname.strip().lower().split(".", 1)[0]
    return re.sub(r"[^a-z0-9_-]", "-", short)


class DynamoEntityResolver:
    """First alias found wins; a new device becomes `host:<short hostname>` (or
    `device:<namespace>:<id>` when the vendor gives no hostname) and its aliases are recorded.

    Aliases are never re-pointed, so what this container resolved once stays true: it is cached
    for the life of the container and a warm poller reads no alias twice. `DeviceHints.source`
    is the namespace of the device id: the Graph connector uses "mde" for MDE device ids, so one
    host seen through both Microsoft APIs is one entity.
    """

    def __init__(self) -> None:
        self._known: dict[str, str] = {}
        # (ip, entity) -> the span this container has written: sightings inside it (or within
        # LEASE_REFRESH after it) change nothing worth a write.
        self._leases: dict[tuple[str, str], tuple[datetime, datetime]] = {}

    def resolve(self, hints: DeviceHints, seen_at: datetime) -> str:
        aliases = _aliases(hints)
        if not aliases:
            raise ValueError("a record with neither device id nor hostname cannot be placed on a timeline")
        known = {self._known[a] for a in aliases if a in self._known}
        if len(known) == 1 and all(a in self._known for a in aliases):
            entity_id = known.pop()
        else:
            entity_id = self._lookup(hints, aliases, seen_at)
        for ip in hints.ips:
            self._lease(ip, entity_id, seen_at)
        return entity_id

    def entity_for_ip(self, ip: str, at: datetime) -> str | None:
        """The entity that held `ip` at `at`: a lease covering `at`, else the latest before it."""
        best: tuple[datetime, str] | None = None
        for lease in EntityItem.query(f"ip#{ip}"):
            first = parse_time(lease.first_seen)
            last = parse_time(lease.last_seen)
            if first <= at <= last + LEASE_REFRESH:
                return lease.sk
            if first <= at and (best is None or last > best[0]):
                best = (last, lease.sk)
        return best[1] if best else None

    def _lookup(self, hints: DeviceHints, aliases: list[str], seen_at: datetime) -> str:
        entity_id: str | None = None
        for alias in aliases:
            try:
                found = EntityItem.get(alias, "alias")
            except DoesNotExist:
                continue
            if found.entity_id:
                entity_id = found.entity_id
                break
        if entity_id is None:
            if hints.hostname:
                entity_id = f"host:{normalize_hostname(hints.hostname)}"
            else:
                entity_id = f"device:{hints.source}:{hints.device_id}"
        for alias in aliases:
            self._known[alias] = self._record(alias, entity_id, seen_at)
        return entity_id

    @staticmethod
    def _record(alias: str, entity_id: str, seen_at: datetime) -> str:
        item = EntityItem(
            alias, "alias", entity_id=entity_id, first_seen=iso(seen_at), last_seen=iso(seen_at)
        )
        try:
            # Never re-point an alias that already exists: the first resolution is stable,
            # so a re-polled alert always lands on the same timeline key.
            item.save(condition=EntityItem.pk.does_not_exist())
            return entity_id
        except PutError as exc:
            if not condition_failed(exc):
                raise
        return EntityItem.get(alias, "alias").entity_id or entity_id

    def _lease(self, ip: str, entity_id: str, seen_at: datetime) -> None:
        """Widen the lease to cover `seen_at`: first_seen only moves back, last_seen only forward.

        Alerts arrive out of order (vendor updates of old alerts, a second EDR lagging), so a
        plain overwrite would shrink the lease; conditional writes keep it the hull of sightings.
        """
        key = (ip, entity_id)
        span = self._leases.get(key)
        if span is not None and span[0] <= seen_at < span[1] + LEASE_REFRESH:
            return
        self._leases[key] = (min(span[0], seen_at), max(span[1], seen_at)) if span else (seen_at, seen_at)
        stamp = iso(seen_at)  # fixed width: string order is time order
        extended = _update_if(
            f"ip#{ip}",
            entity_id,
            [EntityItem.first_seen.set(EntityItem.first_seen | stamp), EntityItem.last_seen.set(stamp)],
            EntityItem.last_seen.does_not_exist() | (EntityItem.last_seen < stamp),
        )
        if not extended:
            # Not newer than the lease's end: it can only move the start back.
            _update_if(
                f"ip#{ip}", entity_id, [EntityItem.first_seen.set(stamp)], EntityItem.first_seen > stamp
            )


def _update_if(pk: str, sk: str, actions: list[Any], condition: Any) -> bool:
    """One conditional UpdateItem (nothing read back); False when its condition refused it."""
    try:
        EntityItem._get_connection().update_item(
            pk, sk, actions=actions, condition=condition, return_values="NONE"
        )
    except UpdateError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True


def _aliases(hints: DeviceHints) -> list[str]:
    out = []
    if hints.device_id:
        out.append(f"alias#{hints.source}-device:{hints.device_id.lower()}")
    if hints.hostname:
        out.append(f"alias#hostname:{normalize_hostname(hints.hostname)}")
    return out
