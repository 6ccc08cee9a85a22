"""The SNS message for a finished investigation: short text plus filterable attributes."""

from __future__ import annotations

from typing import Any


def subject(state: dict[str, Any]) -> str:
    alert = state["event"]
    text = f"[Needle] {state['conclusion']['verdict'].upper()}: {alert['title']} on {alert['entity_id']}"
    # SNS subjects must be under 100 characters, without line breaks or control characters;
    # titles come from the vendor (attacker-influenced), so anything unprintable goes.
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:99].rstrip()


def body(state: dict[str, Any], report_link: str) -> str:
    alert = state["event"]
    conclusion = state["conclusion"]
    lines = [
        f"Verdict: {conclusion['verdict']} (confidence {conclusion['confidence']})",
        f"Alert: {alert['title']} ({alert['source']}, severity {alert['severity']})",
        f"Entity: {alert['entity_id']}",
        f"Score: {alert.get('score')} - {alert.get('explanation')}",
        *[f"Why: {r}" for r in conclusion["reasons"]],
        f"Console: {alert.get('console_url')}",
        f"Report: {report_link}",
    ]
    return "\n".join(lines)


def attributes(state: dict[str, Any]) -> dict[str, dict[str, str]]:
    alert = state["event"]
    values = {
        "severity": alert["severity"],
        "verdict": state["conclusion"]["verdict"],
        "source": alert["source"],
        "entity": alert["entity_id"],
    }
    return {k: {"DataType": "String", "StringValue": str(v)[:256]} for k, v in values.items()}
