"""Normalizer cost per vendor: `json.loads` alone against `json.loads` + `normalize`, per alert.

Payloads are the vendor's test fixtures (tests/fixtures/<vendor>/), varied per alert: ids, hosts
(device ids, hostnames, IPs) and every timestamp, shifted together so an alert stays internally
consistent. The goal is normalize ≤ 3 × json.loads of the same payload. `pack_raw` (gzip of the
payload) runs when an event is stored, not in normalize, so it is reported on its own.

Timing: best of `--repeats` passes over all payloads (time.perf_counter), the four measurements
taking turns in each pass; garbage collector on (a normalizer's allocations trigger collections
in production too), collected before each run.

    python -m bench.normalizers [--alerts N] [--repeats R]
"""

from __future__ import annotations

import argparse
import functools
import gc
import hashlib
import json
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from needle.model.event import Event, pack_raw
from needle.sources.crowdstrike import normalize as crowdstrike_normalize
from needle.sources.crowdstrike.client import cursor_of as crowdstrike_cursor
from needle.sources.graph import normalize as graph_normalize
from needle.sources.graph.client import cursor_of as graph_cursor
from needle.sources.mde import normalize as mde_normalize
from needle.sources.mde.client import cursor_of as mde_cursor
from needle.sources.sentinelone import normalize as sentinelone_normalize

VENDORS = ("mde", "graph", "crowdstrike", "sentinelone")
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
S1_CONSOLE = "https://usea1-northwind.sentinelone.net"
GOAL_RATIO = 3.0
SPAN = timedelta(hours=24)
START = datetime(2025, 6, 2, tzinfo=UTC)

Normalizer = Callable[[dict[str, Any]], Event]

NORMALIZERS: dict[str, Normalizer] = {
    "mde": mde_normalize.normalize,
    "graph": graph_normalize.normalize,
    "crowdstrike": crowdstrike_normalize.normalize,
    "sentinelone": functools.partial(sentinelone_normalize.normalize, console_url=S1_CONSOLE),
}
CURSORS: dict[str, Callable[[dict[str, Any]], datetime]] = {
    "mde": mde_cursor,
    "graph": graph_cursor,
    "crowdstrike": crowdstrike_cursor,
    "sentinelone": sentinelone_normalize.cursor_of,
}
# The field that names an alert (Event.vendor_id) in each vendor's payload.
ID_FIELDS = {"mde": "id", "graph": "id", "crowdstrike": "composite_id", "sentinelone": "id"}

_TIME = re.compile(r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?Z")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- payloads ------------------------------------------------------------------------------


def fixtures(vendor: str) -> list[dict[str, Any]]:
    """The vendor's fixture objects; a saved `{"data": [...]}` response gives each element."""
    records: list[dict[str, Any]] = []
    for path in sorted((FIXTURES / vendor).glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        records.extend(payload["data"] if isinstance(payload.get("data"), list) else [payload])
    if not records:
        raise SystemExit(f"no fixtures in {FIXTURES / vendor}")
    return records


@dataclass(frozen=True)
class Host:
    name: str
    fqdn: str
    ip: str
    hex40: str  # MDE machineId / Graph mdeDeviceId
    hex32: str  # CrowdStrike AID, SentinelOne agentUuid
    numeric: str  # SentinelOne agentId


def host_pool(count: int, seed: int) -> list[Host]:
    rng = random.Random(seed)
    hosts = []
    for number in range(count):
        kind = rng.choice(("WS", "LT", "SRV", "VDI"))
        name = f"{rng.choice(('FIN', 'ENG', 'HR', 'OPS', 'SLS'))}-{kind}-{number:04d}"
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()
        hosts.append(
            Host(
                name=name,
                fqdn=f"{name.lower()}.corp.contoso.example",
                ip=f"10.{rng.randrange(16, 64)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                hex40=digest,
                hex32=digest[:32],
                numeric=str(2_241_190_000_000_000_000 + int(digest[:12], 16) % 10**15),
            )
        )
    return hosts


def _retail(value: str, index: int) -> str:
    """An id of the same shape, unique per index: its last 8 characters become the index."""
    return value[:-8] + f"{index:08d}" if len(value) > 8 else f"{value}{index:08d}"


@dataclass
class _Variant:
    index: int
    host: Host
    delta: timedelta
    ids: dict[str, str]  # original id -> new id, for links that embed it


Edit = Callable[[Any, _Variant], Any]


def _new_id(value: Any, variant: _Variant) -> Any:
    if not isinstance(value, str) or not value:
        return value
    new = variant.ids.get(value)
    if new is None:
        new = variant.ids[value] = _retail(value, variant.index)
    return new


def _host(attribute: str) -> Edit:
    def edit(value: Any, variant: _Variant) -> Any:
        return getattr(variant.host, attribute) if isinstance(value, str) and value else value

    return edit


def _ip_list(value: Any, variant: _Variant) -> Any:
    return [variant.host.ip, *value[1:]] if isinstance(value, list) and value else value


def _link(value: Any, variant: _Variant) -> Any:
    if not isinstance(value, str):
        return value
    for old, new in variant.ids.items():
        value = value.replace(old, new)
    return value


# Edits by key, wherever the key occurs (evidence rows included). Ids come before links in each
# object's key order for the fixtures, so a link sees the new id of its alert.
EDITS: dict[str, dict[str, Edit]] = {
    "mde": {
        "id": _new_id,
        "machineId": _host("hex40"),
        "computerDnsName": _host("fqdn"),
    },
    "graph": {
        "id": _new_id,
        "providerAlertId": _new_id,
        "mdeDeviceId": _host("hex40"),
        "deviceDnsName": _host("fqdn"),
        "hostName": _host("name"),
        "ipInterfaces": _ip_list,
        "alertWebUrl": _link,
        "incidentWebUrl": _link,
    },
    "crowdstrike": {
        "composite_id": _new_id,
        "id": _new_id,
        "agent_id": _host("hex32"),
        "device_id": _host("hex32"),
        "hostname": _host("name"),
        "local_ip": _host("ip"),
        "falcon_host_link": _link,
    },
    "sentinelone": {
        "id": _new_id,
        "threatId": _new_id,
        "agentId": _host("numeric"),
        "agentUuid": _host("hex32"),
        "agentComputerName": _host("name"),
        "agentIpV4": _host("ip"),
        "inet": _ip_list,
    },
}


class _Shift:
    """The edit of one template timestamp: parsed once, moved by each alert's delta."""

    def __init__(self, text: str) -> None:
        match = _TIME.fullmatch(text)
        assert match is not None
        fraction = match["frac"] or ""
        self.moment = datetime.fromisoformat(match["base"]) + timedelta(
            microseconds=int(fraction[:6].ljust(6, "0"))
        )
        self.digits = len(fraction)
        self.extra = fraction[6:]  # digits past microseconds (MDE 7, CrowdStrike 9) are kept

    def __call__(self, value: Any, variant: _Variant) -> str:
        stamp = (self.moment + variant.delta).isoformat(timespec="microseconds")
        if not self.digits:
            return stamp[:19] + "Z"
        return f"{stamp[:19]}.{stamp[20:26][: self.digits]}{self.extra}Z"


@dataclass(frozen=True)
class _Plan:
    """How one template container changes: the edit of each varied member, by key or index.
    A member that is a container holding varied fields is edited by its own plan's `apply`;
    containers without any are shared, not copied."""

    steps: tuple[tuple[Any, Edit], ...]

    def apply(self, value: Any, variant: _Variant) -> Any:
        # Copy on write: a shallow copy (in C) of each container on the way to a varied field,
        # everything else shared with the template. Nothing downstream mutates a payload
        # (simulators deep-copy what they store, normalizers only read).
        out = value.copy()
        for key, edit in self.steps:
            out[key] = edit(value[key], variant)
        return out


def _plan(value: dict[str, Any] | list[Any], edits: dict[str, Edit]) -> _Plan | None:
    steps: list[tuple[Any, Edit]] = []
    pairs = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in pairs:
        if isinstance(key, str) and key in edits:
            steps.append((key, edits[key]))
        elif isinstance(item, str) and _TIME.fullmatch(item):
            steps.append((key, _Shift(item)))
        elif isinstance(item, dict | list):
            child = _plan(item, edits)
            if child is not None:
                steps.append((key, child.apply))
    return _Plan(tuple(steps)) if steps else None


class PayloadFactory:
    """Varied alerts of one vendor, built from its fixtures in turn."""

    def __init__(self, vendor: str, *, seed: int = 7, hosts: int = 500) -> None:
        self.vendor = vendor
        self.templates = fixtures(vendor)
        self.updated = [CURSORS[vendor](template) for template in self.templates]
        self.hosts = host_pool(hosts, seed)
        self.plans = [_plan(template, EDITS[vendor]) or _Plan(()) for template in self.templates]
        self.random = random.Random(seed)

    def make(self, index: int, updated: datetime) -> dict[str, Any]:
        """Alert number `index` (its id is unique per index), updated at `updated`."""
        which = index % len(self.templates)
        variant = _Variant(
            index=index,
            host=self.hosts[self.random.randrange(len(self.hosts))],
            delta=updated - self.updated[which],
            ids={},
        )
        made: dict[str, Any] = self.plans[which].apply(self.templates[which], variant)
        return made

    def spread(self, count: int, start: datetime = START, span: timedelta = SPAN) -> Iterator[dict[str, Any]]:
        """`count` alerts with update times uniformly spread over [start, start + span)."""
        micros = int(span / timedelta(microseconds=1))
        for index in range(count):
            yield self.make(index, start + timedelta(microseconds=self.random.randrange(micros)))


# -- timing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds, time.perf_counter: what the table reports
    cpu: float  # seconds, time.process_time: unaffected by other processes taking the CPU


def best_of(repeats: int, runs: dict[str, Callable[[], object]], label: str) -> dict[str, Timing]:
    """The fastest of `repeats` runs of each. The runs take turns within each pass, so a burst
    of load on the machine hits all of them alike rather than one."""
    wall = dict.fromkeys(runs, float("inf"))
    cpu = dict.fromkeys(runs, float("inf"))
    for attempt in range(1, repeats + 1):
        progress(f"{label}: pass {attempt}/{repeats}")
        for name, run in runs.items():
            gc.collect()
            started, cpu_started = time.perf_counter(), time.process_time()
            run()
            cpu[name] = min(cpu[name], time.process_time() - cpu_started)
            wall[name] = min(wall[name], time.perf_counter() - started)
    return {name: Timing(wall[name], cpu[name]) for name in runs}


@dataclass(frozen=True)
class Result:
    vendor: str
    alerts: int
    bytes_per_alert: float
    loads: Timing
    normalize: Timing
    loads_normalize: Timing
    pack_raw: Timing

    def us(self, timing: Timing) -> float:
        return timing.wall * 1e6 / self.alerts

    @property
    def ratio(self) -> float:
        return self.normalize.wall / self.loads.wall

    @property
    def cpu_ratio(self) -> float:
        return self.normalize.cpu / self.loads.cpu

    @property
    def busy(self) -> float:
        """How much longer the runs took than the CPU they used (1.0 on a quiet machine)."""
        timings = (self.loads, self.normalize, self.loads_normalize, self.pack_raw)
        return sum(t.wall for t in timings) / max(sum(t.cpu for t in timings), 1e-9)


def measure(vendor: str, count: int, repeats: int) -> Result:
    factory = PayloadFactory(vendor)
    payloads = list(factory.spread(count))
    texts = [json.dumps(payload) for payload in payloads]
    ids = {payload[ID_FIELDS[vendor]] for payload in payloads}
    if len(ids) != count:
        raise SystemExit(f"{vendor}: the generator repeated ids ({len(ids)} distinct of {count})")
    normalize = NORMALIZERS[vendor]
    loads = json.loads
    parsed = [loads(text) for text in texts]
    for record in parsed:  # every generated payload must be a valid alert, or the timing lies
        normalize(record)

    def only_loads() -> None:
        for text in texts:
            loads(text)

    def only_normalize() -> None:
        for record in parsed:
            normalize(record)

    def loads_and_normalize() -> None:
        for text in texts:
            normalize(loads(text))

    def only_pack_raw() -> None:
        for record in parsed:
            pack_raw(record)

    runs: dict[str, Callable[[], object]] = {
        "loads": only_loads,
        "normalize": only_normalize,
        "both": loads_and_normalize,
        "pack": only_pack_raw,
    }
    best = best_of(repeats, runs, vendor)
    return Result(
        vendor,
        count,
        sum(map(len, texts)) / count,
        best["loads"],
        best["normalize"],
        best["both"],
        best["pack"],
    )


def table(results: list[Result]) -> str:
    header = (
        f"{'vendor':<12} {'bytes':>6} {'json.loads':>11} {'normalize':>10} {'loads+norm':>11} "
        f"{'norm/loads':>10} {'goal ≤3×':>9} {'(cpu)':>6} {'pack_raw':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        verdict = "ok" if r.ratio <= GOAL_RATIO else "OVER"
        lines.append(
            f"{r.vendor:<12} {r.bytes_per_alert:>6.0f} {r.us(r.loads):>9.1f}µs {r.us(r.normalize):>8.1f}µs "
            f"{r.us(r.loads_normalize):>9.1f}µs {r.ratio:>9.2f}× {verdict:>9} {r.cpu_ratio:>5.2f}× "
            f"{r.us(r.pack_raw):>7.1f}µs"
        )
    lines.append(
        "µs per alert (wall, best of the passes). normalize: on parsed payloads; loads+norm: both, as\n"
        "the poller pays them; norm/loads: the goal ratio, (cpu): the same from process CPU time;\n"
        "pack_raw: gzip of the payload at storage time, not part of normalize."
    )
    busy = max(r.busy for r in results)
    if busy > 1.15:
        lines.append(
            f"note: the runs took up to {busy:.2f}× the CPU time they used: the machine was busy, so "
            "wall figures are inflated; the (cpu) ratio is the steadier one."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=2000, help="payloads per vendor (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the best counts (default 5)")
    parser.add_argument("--vendor", choices=VENDORS, action="append", help="only these vendors")
    args = parser.parse_args(argv)
    if args.alerts < 1 or args.repeats < 1:
        parser.error("--alerts and --repeats must be at least 1")
    results = []
    for vendor in args.vendor or VENDORS:
        progress(f"{vendor}: building {args.alerts} payloads")
        results.append(measure(vendor, args.alerts, args.repeats))
    print(f"Normalizer cost per alert ({args.alerts} varied payloads per vendor, best of {args.repeats})")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
