"""The whole pipeline at volume: N generated alerts through `needle replay` (default 50,000 over
30 days), timed end to end, alerts/s and the goal (50,000 in under 10 minutes) printed.

The alerts come from needle_local.scenarios.generate (a synthetic enterprise with recurring
noise, attack campaigns, updates and malformed records, fixed seed), written as replay files
into a temporary folder; the replay's own progress lines go to stderr.

    python -m bench.replay [--alerts N] [--days D] [--investigate incidents|every-edr-alert|none]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from needle_local import replay
from needle_local.scenarios import generate, write_jsonl

GOAL_ALERTS = 50_000
GOAL_SECONDS = 600.0
START = datetime(2026, 11, 1, tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=GOAL_ALERTS)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument(
        "--investigate", choices=("incidents", "every-edr-alert", "none"), default="incidents"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="needle-bench-replay-") as folder:
        inputs = Path(folder) / "in"
        write_jsonl(generate(args.alerts, START, timedelta(days=args.days)), inputs)
        out = Path(folder) / "out.jsonl"
        started = time.monotonic()
        status = replay.main([str(inputs), "--out", str(out), "--investigate", args.investigate])
        seconds = time.monotonic() - started
        lines = out.read_text().splitlines() if out.exists() else []
    if status != 0:
        return status
    events = sum(1 for line in lines if line.startswith('{"type": "event"'))
    rate = args.alerts / seconds
    projected = GOAL_ALERTS / rate
    print(f"Replay of {args.alerts:,} alerts over {args.days:g} days (--investigate {args.investigate})")
    print(f"  {seconds:,.0f} s end to end, {rate:,.1f} alerts/s, {events:,} events written")
    print(
        f"  goal: {GOAL_ALERTS:,} alerts in {GOAL_SECONDS / 60:g} min; at this rate "
        f"{projected / 60:,.1f} min ({'met' if projected <= GOAL_SECONDS else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
