"""Backfills through each EDR simulator: N alerts (default 50,000) read to the end by the real client.

Each vendor's simulator is loaded with N alerts built from its fixtures (unique ids, hosts from a
pool, update times spread over 24 h), started on 127.0.0.1, and read from the start of the
window by the production client at the vendor's largest page size. Every alert must arrive
(distinct ids == N): otherwise the exit status is 1.

    python -m bench.backfill [--alerts N] [--vendor NAME ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Any

import httpx

from bench.normalizers import ID_FIELDS, SPAN, START, VENDORS, PayloadFactory, progress
from needle.sources.crowdstrike.client import OFFSET_WINDOW, CrowdStrikeClient, FalconTokens
from needle.sources.graph.client import MAX_PAGE_SIZE as GRAPH_MAX_PAGE
from needle.sources.graph.client import GraphClient, graph_tokens
from needle.sources.http import EntraClientCredentials
from needle.sources.mde.client import SCOPE as MDE_SCOPE
from needle.sources.mde.client import MdeClient
from needle.sources.sentinelone.client import MAX_LIMIT as S1_MAX_LIMIT
from needle.sources.sentinelone.client import SentinelOneClient, StaticApiToken
from needle_local.simulators.crowdstrike import MAX_ENTITY_IDS, CrowdStrikeSimulator
from needle_local.simulators.graph import GraphSimulator
from needle_local.simulators.mde import MAX_TOP as MDE_MAX_TOP
from needle_local.simulators.mde import MdeSimulator
from needle_local.simulators.sentinelone import SentinelOneSimulator

DEFAULT_ALERTS = 50_000
PROGRESS_EVERY = 10_000
TENANT, CLIENT_ID, SECRET = "bench-tenant", "bench-client", "bench-secret"
S1_TOKEN = "bench-s1-api-token"  # noqa: S105 - the local simulator's fixed token
TOKEN_ROUTES = frozenset({"POST /token", "POST /oauth2/token"})
# Every alert is visible: the scenario clock stands an hour after the last update.
NOW = START + SPAN + timedelta(hours=1)
# The largest page each client may ask for. CrowdStrike's is half the 10,000-row result window:
# the client overlaps pages and needs two of them inside the window.
PAGE_SIZES = {
    "mde": MDE_MAX_TOP,
    "graph": GRAPH_MAX_PAGE,
    "crowdstrike": OFFSET_WINDOW // 2,
    "sentinelone": S1_MAX_LIMIT,
}

Pages = Iterator[list[dict[str, Any]]]
Simulator = MdeSimulator | GraphSimulator | CrowdStrikeSimulator | SentinelOneSimulator


def _clock() -> datetime:
    return NOW


def simulator(vendor: str) -> Simulator:
    if vendor == "mde":
        return MdeSimulator(tenant_id=TENANT, client_id=CLIENT_ID, client_secret=SECRET, clock=_clock)
    if vendor == "graph":
        return GraphSimulator(tenant_id=TENANT, client_id=CLIENT_ID, client_secret=SECRET, clock=_clock)
    if vendor == "crowdstrike":
        return CrowdStrikeSimulator(client_id=CLIENT_ID, client_secret=SECRET, clock=_clock)
    return SentinelOneSimulator(api_token=S1_TOKEN, clock=_clock)


def reader(vendor: str, http: httpx.Client, base_url: str) -> Callable[[datetime], Pages]:
    """The production client's incremental read, at the vendor's largest page size."""
    if vendor == "mde":
        tokens = EntraClientCredentials(http, base_url, TENANT, CLIENT_ID, SECRET, MDE_SCOPE)
        return MdeClient(http, base_url, tokens, page_size=PAGE_SIZES[vendor]).alerts_updated
    if vendor == "graph":
        graph = graph_tokens(http, base_url, TENANT, CLIENT_ID, SECRET)
        return GraphClient(http, base_url, graph, page_size=PAGE_SIZES[vendor]).alerts_updated
    if vendor == "crowdstrike":
        falcon = FalconTokens(http, base_url, CLIENT_ID, SECRET)
        client = CrowdStrikeClient(
            http, base_url, falcon, page_size=PAGE_SIZES[vendor], entities_batch=MAX_ENTITY_IDS
        )
        return client.alerts_updated
    return SentinelOneClient(
        http, base_url, StaticApiToken(S1_TOKEN), page_size=PAGE_SIZES[vendor]
    ).threats_updated


@dataclass(frozen=True)
class Backfill:
    vendor: str
    alerts: int  # rows received, re-reads included
    distinct: int
    load_seconds: float
    seconds: float
    cpu_seconds: float  # CPU of client and simulator threads while reading (contention-proof)
    routes: dict[str, int]

    @property
    def api_requests(self) -> int:
        return sum(n for route, n in self.routes.items() if route not in TOKEN_ROUTES)

    @property
    def token_requests(self) -> int:
        return sum(n for route, n in self.routes.items() if route in TOKEN_ROUTES)


def load(vendor: str, count: int) -> tuple[Simulator, float]:
    """A simulator holding `count` generated alerts, and the seconds loading took."""
    factory = PayloadFactory(vendor)
    sim = simulator(vendor)
    started = time.perf_counter()
    for index, alert in enumerate(factory.spread(count), start=1):
        sim.add_alert(alert)
        if index % PROGRESS_EVERY == 0 or index == count:
            progress(f"{vendor}: loaded {index:,} alerts ({time.perf_counter() - started:.1f} s)")
    return sim, time.perf_counter() - started


def read(vendor: str, sim: Simulator, load_seconds: float) -> Backfill:
    """Start the simulator and read every alert with the vendor's client."""
    id_field = ID_FIELDS[vendor]
    ids: set[Any] = set()
    received = 0
    with sim, httpx.Client(timeout=httpx.Timeout(300.0)) as http:
        pages = reader(vendor, http, sim.base_url)
        started, cpu_started = time.perf_counter(), time.process_time()
        next_report = PROGRESS_EVERY
        for page in pages(START):
            received += len(page)
            ids.update(alert.get(id_field) for alert in page)
            while received >= next_report:
                elapsed = time.perf_counter() - started
                progress(f"{vendor}: read {received:,} alerts ({len(ids):,} distinct, {elapsed:.1f} s)")
                next_report += PROGRESS_EVERY
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        routes = dict(sim.requests)
    return Backfill(vendor, received, len(ids), load_seconds, seconds, cpu_seconds, routes)


def _vendor_process(vendor: str, count: int, go: Event, results: Connection) -> None:
    """One vendor in its own process: load, say so, wait for the turn to read, send the result."""
    try:
        sim, load_seconds = load(vendor, count)
        results.send(("loaded", None))
        go.wait()
        results.send(("done", read(vendor, sim, load_seconds)))
    except BaseException:
        results.send(("error", traceback.format_exc()))
        raise


@dataclass
class _Running:
    process: BaseProcess
    go: Event
    results: Connection

    def receive(self, expected: str) -> Any:
        try:
            kind, payload = self.results.recv()
        except EOFError:
            raise BackfillError(f"the process died (exit code {self.process.exitcode})") from None
        if kind == "error":
            raise BackfillError(payload)
        assert kind == expected, kind
        return payload


class BackfillError(RuntimeError):
    """A vendor's backfill process failed."""


def run_all(vendors: list[str], count: int) -> list[Backfill]:
    """Each vendor in its own process; the next one loads its simulator while the current one
    reads, so only the reads run one at a time (loading is not what is measured)."""
    context = multiprocessing.get_context("fork")

    def launch(vendor: str) -> _Running:
        go = context.Event()
        parent_end, child_end = context.Pipe(duplex=False)
        process = context.Process(
            target=_vendor_process,
            args=(vendor, count, go, child_end),
            name=f"backfill-{vendor}",
            daemon=True,
        )
        process.start()
        child_end.close()
        return _Running(process, go, parent_end)

    results: list[Backfill] = []
    upcoming = launch(vendors[0])
    for position, _vendor in enumerate(vendors):
        current = upcoming
        current.receive("loaded")
        if position + 1 < len(vendors):
            upcoming = launch(vendors[position + 1])
        current.go.set()
        results.append(current.receive("done"))
        current.process.join()
    return results


def table(results: list[Backfill]) -> str:
    header = (
        f"{'vendor':<12} {'page':>6} {'alerts':>8} {'distinct':>8} {'load s':>7} {'read s':>7} "
        f"{'cpu s':>6} {'alerts/s':>9} {'API req':>8} {'token req':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.vendor:<12} {PAGE_SIZES[r.vendor]:>6} {r.alerts:>8,} {r.distinct:>8,} "
            f"{r.load_seconds:>7.1f} {r.seconds:>7.1f} {r.cpu_seconds:>6.1f} {r.distinct / r.seconds:>9,.0f} "
            f"{r.api_requests:>8} {r.token_requests:>9}"
        )
    lines.append("requests by route:")
    for r in results:
        detail = ", ".join(f"{route} ×{n}" for route, n in sorted(r.routes.items()))
        lines.append(f"  {r.vendor}: {detail}")
    lines.append(
        "alerts: rows received (re-reads included); read s: wall time of the read; cpu s: CPU time of\n"
        "client + simulator during it (the machine's other load does not count); alerts/s: distinct\n"
        "alerts per read second; load s: generating + add_alert (not part of the read). Each vendor\n"
        "runs in its own process, which loads while the previous vendor reads."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=DEFAULT_ALERTS, help="alerts per vendor (50,000)")
    parser.add_argument("--vendor", choices=VENDORS, action="append", help="only these vendors")
    args = parser.parse_args(argv)
    if args.alerts < 1:
        parser.error("--alerts must be at least 1")
    try:
        results = run_all(args.vendor or list(VENDORS), args.alerts)
    except BackfillError as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    print(f"Backfill of {args.alerts:,} alerts per vendor through its simulator (127.0.0.1)")
    print(table(results))
    missing = [r for r in results if r.distinct != args.alerts]
    for r in missing:
        print(f"FAIL {r.vendor}: {r.distinct:,} distinct alerts of {args.alerts:,}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
