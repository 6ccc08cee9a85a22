"""`make demo`: the whole pipeline on the embedded AWS against simulated MDE, CrowdStrike and
SentinelOne APIs at once.

The simulated enterprise plays its alerts over an hour of simulated time in 10-minute steps;
each step is one tick of every EDR's schedule (PollSource), then the stream and the
investigations settle.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from needle_local.embedded import EmbeddedAws
from needle_local.scenarios import enterprise_scenario
from needle_local.simulators.credentials import SIM_SECRETS
from needle_local.simulators.crowdstrike import CrowdStrikeSimulator
from needle_local.simulators.mde import MdeSimulator
from needle_local.simulators.sentinelone import SentinelOneSimulator

SECRETS = {k: SIM_SECRETS[k] for k in ("MdeCredentials", "CrowdStrikeCredentials", "SentinelOneCredentials")}
STEP = timedelta(minutes=10)
STEPS = 5


def quiet() -> None:
    """moto warns about every resource its CloudFormation skips; the runtime handles those."""
    warnings.filterwarnings("ignore", category=UserWarning, module="moto")
    logging.getLogger("moto").setLevel(logging.ERROR)
    for name in ("werkzeug",):
        logging.getLogger(name).setLevel(logging.ERROR)


def run(serve: bool = False, out: Any = sys.stdout) -> dict[str, Any]:
    quiet()
    started = time.monotonic()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=STEPS * 10 + 5)
    clock = {"now": start}
    scenario = enterprise_scenario(start)
    now = lambda: clock["now"]  # noqa: E731 - the simulators' shared scenario clock
    with (
        MdeSimulator(clock=now) as mde,
        CrowdStrikeSimulator(clock=now) as falcon,
        SentinelOneSimulator(clock=now, rate_limit=None) as s1,
    ):
        for source, simulator in (("mde", mde), ("crowdstrike", falcon), ("sentinelone", s1)):
            for item in scenario.get(source, []):
                simulator.add_alert(item.alert, visible_at=item.visible_at)
        parameters = {
            "EnableMde": "true",
            "MdeApiBaseUrl": mde.base_url,
            "MdeLoginBaseUrl": mde.base_url,
            "EnableCrowdStrike": "true",
            "CrowdStrikeApiBaseUrl": falcon.base_url,
            "EnableSentinelOne": "true",
            "SentinelOneConsoleUrl": s1.base_url,
            "LogLevel": os.environ.get("NEEDLE_LOG_LEVEL", "WARNING"),
        }
        with EmbeddedAws(parameters=parameters, secrets=SECRETS) as aws:
            print(f"embedded AWS up: stack '{aws.stack_name}' from template.yaml", file=out)
            polls = []
            for step in range(1, STEPS + 2):
                clock["now"] = start + step * STEP
                results = aws.tick(now=clock["now"])
                aws.settle()
                polls.extend(results)
                created = ", ".join(f"{r['source']} {r['created']}" for r in results)
                print(f"  tick {step}: simulated {clock['now']:%H:%M}Z, new alerts: {created}", file=out)
            summary = summarize(aws, polls)
            print_summary(summary, out)
            print(f"finished in {time.monotonic() - started:.1f}s", file=out)
            if serve:
                endpoint = aws.serve(port=int(os.environ.get("NEEDLE_PORT", "4566")))
                bucket = aws.physical["ReportsBucket"]
                print(f"\nembedded AWS serving on {endpoint}; try:", file=out)
                print(f"  aws --endpoint-url {endpoint} s3 ls s3://{bucket} --recursive", file=out)
                print("Ctrl-C to stop.", file=out, flush=True)
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
            return summary


def summarize(aws: EmbeddedAws, polls: list[dict[str, Any]]) -> dict[str, Any]:
    dynamodb = aws.client("dynamodb")
    events = dynamodb.scan(TableName=aws.physical["EventsTable"])["Items"]
    incidents = [
        json.loads(i["body"]["S"])
        for i in dynamodb.scan(TableName=aws.physical["IncidentsTable"])["Items"]
        if i["pk"]["S"].startswith("incident#")
    ]
    messages = aws.inbox()
    s3 = aws.client("s3")
    bucket = aws.physical["ReportsBucket"]
    reports = [
        f"s3://{bucket}/{o['Key']}"
        for o in s3.list_objects_v2(Bucket=bucket, Prefix="reports/").get("Contents", [])
        if o["Key"].endswith(".html")
    ]
    totals: Counter[str] = Counter()
    for poll in polls:
        totals.update({k: poll[k] for k in ("created", "updated", "unchanged", "quarantined")})
    return {
        "polls": dict(totals),
        "events": sorted(
            (
                {
                    "time": e["time"]["S"],
                    "entity": e["entity_id"]["S"],
                    "source": e["source"]["S"],
                    "title": e["title"]["S"],
                    "score": int(e["score"]["N"]) if "score" in e else None,
                    "explanation": e.get("explanation", {}).get("S", ""),
                }
                for e in events
            ),
            key=lambda e: str(e["time"]),
        ),
        "incidents": incidents,
        "messages": [{"subject": m.subject, "attributes": m.attributes} for m in messages],
        "reports": sorted(reports),
        "executions": Counter(e["status"] for e in aws.executions()),
    }


def print_summary(summary: dict[str, Any], out: Any) -> None:
    polls = summary["polls"]
    print(
        f"\nalerts ingested: {polls.get('created', 0)} new, {polls.get('updated', 0)} updated, "
        f"{polls.get('unchanged', 0)} re-read unchanged, {polls.get('quarantined', 0)} quarantined",
        file=out,
    )
    print("\nscores (0-100, how unusual for this entity):", file=out)
    for e in summary["events"]:
        where = f"{e['source']:<11} {e['entity']:<20}"
        line = f"  {e['score']!s:>4}  {where} {e['title'][:44]:<44}  {e['explanation']}"
        print(line, file=out)
    print(f"\nincidents: {len(summary['incidents'])}", file=out)
    for i in summary["incidents"]:
        print(f"  {i['id']} {i['rule']} on {i['entity_id']}: {', '.join(i['values'])}", file=out)
    print(f"\ninvestigations: {dict(summary['executions'])}", file=out)
    print(f"SNS messages received: {len(summary['messages'])}", file=out)
    for m in summary["messages"]:
        print(f"  {m['subject']}  {m['attributes']}", file=out)
    print(f"\nreports ({len(summary['reports'])}):", file=out)
    for uri in summary["reports"]:
        print(f"  {uri}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="needle-demo", description=__doc__)
    parser.add_argument("--serve", action="store_true", help="keep the embedded AWS up on 127.0.0.1")
    args = parser.parse_args(argv)
    summary = run(serve=args.serve)
    return 0 if summary["messages"] and summary["reports"] else 1


if __name__ == "__main__":
    sys.exit(main())
