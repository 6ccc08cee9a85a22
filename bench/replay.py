"""The whole pipeline at volume: N generated alerts through `needle replay` (default 50,000 over
30 days), timed end to end, alerts/s and the goal (50,000 in under 10 minutes) printed.

The alerts come from needle_local.scenarios.generate (a synthetic enterprise with recurring
noise, attack campaigns, updates and malformed records, fixed seed), written as replay files
into a temporary folder; the replay's own progress lines go to stderr. The progress curve
(alerts stored against wall seconds, beside the pace the goal needs) is written as SVG.

    python -m bench.replay [--alerts N] [--days D] [--investigate incidents|every-edr-alert|none]
                           [--chart out/bench-replay.svg]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.chart import Series, line_chart
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
    parser.add_argument("--chart", type=Path, default=Path("out/bench-replay.svg"))
    args = parser.parse_args(argv)
    steps: list[replay.Step] = []
    replay.quiet_moto()
    with tempfile.TemporaryDirectory(prefix="needle-bench-replay-") as folder:
        inputs = Path(folder) / "in"
        write_jsonl(generate(args.alerts, START, timedelta(days=args.days)), inputs)
        out = Path(folder) / "out.jsonl"
        started = time.monotonic()
        with out.open("w") as handle:
            counts = replay.replay(
                inputs, handle, step=None, trigger=args.investigate, log=sys.stderr, on_step=steps.append
            )
        seconds = time.monotonic() - started
    events = counts["events"]
    rate = args.alerts / seconds
    projected = GOAL_ALERTS / rate
    print(f"Replay of {args.alerts:,} alerts over {args.days:g} days (--investigate {args.investigate})")
    print(f"  {seconds:,.0f} s end to end, {rate:,.1f} alerts/s, {events:,} events written")
    print(
        f"  goal: {GOAL_ALERTS:,} alerts in {GOAL_SECONDS / 60:g} min; at this rate "
        f"{projected / 60:,.1f} min ({'met' if projected <= GOAL_SECONDS else 'NOT met'})"
    )
    args.chart.parent.mkdir(parents=True, exist_ok=True)
    args.chart.write_text(chart(steps, args.alerts, seconds))
    print(f"  progress curve: {args.chart}")
    return 0


def chart(steps: list[replay.Step], alerts: int, seconds: float) -> str:
    """Alerts stored against wall seconds, with the goal's pace (50,000 in 10 min) for scale."""
    stored = Series("alerts stored", [(0.0, 0.0)] + [(s.elapsed, float(s.stored)) for s in steps])
    # A small run ends long before 10 min: its pace line stops at 1.5× the time the goal allows
    # it, so the axis is not stretched to 600 s and the curve squeezed into a corner.
    goal_end = min(GOAL_SECONDS, GOAL_SECONDS * alerts / GOAL_ALERTS * 1.5)
    pace = Series(
        f"goal pace ({GOAL_ALERTS:,} in {GOAL_SECONDS / 60:g} min)",
        [(0.0, 0.0), (goal_end, GOAL_ALERTS / GOAL_SECONDS * goal_end)],
        dashed=True,
    )
    return line_chart(
        [stored, pace],
        title=f"needle replay: {alerts:,} alerts, {seconds:,.0f} s end to end",
        x_label="wall seconds",
        y_label="alerts stored",
    )


if __name__ == "__main__":
    sys.exit(main())
