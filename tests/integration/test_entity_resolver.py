"""DynamoEntityResolver on the embedded AWS: aliases to one entity, IP leases over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from needle.model.event import DeviceHints
from needle.store.entities import LEASE_REFRESH, DynamoEntityResolver
from tests.support import scan

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def hints(source: str, device_id: str | None, hostname: str | None, *ips: str) -> DeviceHints:
    return DeviceHints(source=source, device_id=device_id, hostname=hostname, ips=ips)


def lease(aws: Any, ip: str) -> dict[str, tuple[str, str]]:
    return {
        i["sk"]["S"]: (i["first_seen"]["S"], i["last_seen"]["S"])
        for i in scan(aws, "EntitiesTable")
        if i["pk"]["S"] == f"ip#{ip}"
    }


def test_one_host_seen_by_two_edrs_is_one_entity(bound: Any) -> None:
    resolver = DynamoEntityResolver()
    # GIVEN a host first seen by MDE under its FQDN
    first = resolver.resolve(hints("mde", "4f1a9c", "FIN-WS-042.corp.example.com"), AT)
    # WHEN CrowdStrike (its own device id, short name) and Graph (MDE's device id) report it
    falcon = resolver.resolve(hints("crowdstrike", "a1b2c3", "fin-ws-042"), AT)
    graph = resolver.resolve(hints("mde", "4F1A9C", None), AT)
    # THEN every record lands on one entity, named after the short hostname
    assert first == falcon == graph == "host:fin-ws-042"
    # AND a new container (cold cache) resolves the vendor ids alone to the same entity
    cold = DynamoEntityResolver()
    assert cold.resolve(hints("crowdstrike", "a1b2c3", None), AT) == "host:fin-ws-042"
    assert cold.resolve(hints("mde", "4f1a9c", None), AT) == "host:fin-ws-042"


def test_an_alias_is_never_repointed(bound: Any) -> None:
    resolver = DynamoEntityResolver()
    assert resolver.resolve(hints("sentinelone", "s1-77", "mkt-mbp-017"), AT) == "host:mkt-mbp-017"
    # A device id already known keeps its entity even if the host is later renamed
    assert resolver.resolve(hints("sentinelone", "s1-77", "mkt-mbp-099"), AT) == "host:mkt-mbp-017"
    assert DynamoEntityResolver().resolve(hints("sentinelone", "s1-77", None), AT) == "host:mkt-mbp-017"


def test_a_device_without_hostname_is_named_by_its_vendor_id_and_nothing_at_all_is_refused(
    bound: Any,
) -> None:
    resolver = DynamoEntityResolver()
    assert resolver.resolve(hints("crowdstrike", "ABC", None), AT) == "device:crowdstrike:ABC"
    with pytest.raises(ValueError, match="neither device id nor hostname"):
        resolver.resolve(hints("mde", None, None, "10.0.0.5"), AT)


def test_an_ip_resolves_to_the_entity_that_held_it_at_the_time(bound: Any) -> None:
    resolver = DynamoEntityResolver()
    # GIVEN 10.1.2.3 held by laptop-a for a day, then by laptop-b (DHCP moved it)
    for hour in range(0, 25, 2):
        resolver.resolve(hints("mde", "a", "laptop-a", "10.1.2.3"), AT + timedelta(hours=hour))
    moved = AT + timedelta(days=2)
    resolver.resolve(hints("mde", "b", "laptop-b", "10.1.2.3"), moved)
    # THEN a detection at each time resolves to the holder then
    assert resolver.entity_for_ip("10.1.2.3", AT + timedelta(hours=12)) == "host:laptop-a"
    assert resolver.entity_for_ip("10.1.2.3", moved + timedelta(minutes=5)) == "host:laptop-b"
    # AND between leases, the latest holder before the time; before any lease, nobody
    assert resolver.entity_for_ip("10.1.2.3", AT + timedelta(hours=36)) == "host:laptop-a"
    assert resolver.entity_for_ip("10.1.2.3", AT - timedelta(hours=1)) is None
    assert resolver.entity_for_ip("10.9.9.9", AT) is None


def test_an_out_of_order_sighting_widens_a_lease_and_never_shrinks_it(bound: Any) -> None:
    resolver = DynamoEntityResolver()
    # GIVEN a lease written at 09:00 and 15:00
    resolver.resolve(hints("mde", "a", "laptop-a", "10.1.2.3"), AT)
    resolver.resolve(hints("mde", "a", "laptop-a", "10.1.2.3"), AT + timedelta(hours=6))
    assert lease(bound, "10.1.2.3") == {
        "host:laptop-a": ("2026-11-02T09:00:00.000Z", "2026-11-02T15:00:00.000Z")
    }
    # WHEN older sightings arrive late (a vendor update of an old alert, another container)
    DynamoEntityResolver().resolve(hints("mde", "a", "laptop-a", "10.1.2.3"), AT + timedelta(hours=3))
    DynamoEntityResolver().resolve(hints("mde", "a", "laptop-a", "10.1.2.3"), AT - timedelta(hours=2))
    # THEN the lease ends where it ended and starts at the earliest sighting
    assert lease(bound, "10.1.2.3") == {
        "host:laptop-a": ("2026-11-02T07:00:00.000Z", "2026-11-02T15:00:00.000Z")
    }


def test_a_warm_container_refreshes_a_lease_at_most_once_per_refresh_interval(bound: Any) -> None:
    resolver = DynamoEntityResolver()
    resolver.resolve(hints("mde", "a", "laptop-a", "10.1.2.3"), AT)
    resolver.resolve(hints("mde", "a", "laptop-a", "10.1.2.3"), AT + LEASE_REFRESH / 2)
    assert lease(bound, "10.1.2.3")["host:laptop-a"][1] == "2026-11-02T09:00:00.000Z"  # not worth a write
    resolver.resolve(hints("mde", "a", "laptop-a", "10.1.2.3"), AT + LEASE_REFRESH)
    assert lease(bound, "10.1.2.3")["host:laptop-a"][1] == "2026-11-02T10:00:00.000Z"
