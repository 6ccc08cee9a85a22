"""Render an investigation as a JSON document and an HTML page (every alert field escaped)."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from typing import Any


def report_key(investigation_id: str, at: datetime, ext: str) -> str:
    return f"reports/{at:%Y/%m/%d}/{investigation_id}.{ext}"


def as_json(state: dict[str, Any]) -> bytes:
    doc = {
        "investigation_id": state["investigation_id"],
        "alert": state["event"],
        "entity_id": state["event"]["entity_id"],
        "console_url": state["event"].get("console_url"),
        "score": state["event"].get("score"),
        "explanation": state["event"].get("explanation"),
        "conclusion": state["conclusion"],
        "incidents": state.get("incidents", []),
        "timeline": state.get("timeline", []),
    }
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _link(url: Any) -> str:
    # Only http(s) links become anchors: a vendor field could carry javascript: URLs.
    text = "" if url is None else str(url)
    if text.startswith(("https://", "http://")):
        return f'<a href="{_e(text)}" rel="noopener noreferrer">{_e(text)}</a>'
    return _e(text)


def _row(event: dict[str, Any], *, highlight: bool) -> str:
    cells = (
        event["time"],
        event["source"],
        event["title"],
        event["severity"],
        event.get("score"),
        ", ".join(event.get("tactics", [])),
    )
    css = ' class="this"' if highlight else ""
    return f"<tr{css}>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"


def _incident(incident: dict[str, Any]) -> str:
    values = _e(", ".join(incident.get("values", [])))
    where = f"{_e(incident['rule'])}, {_e(incident['id'])}"
    return f"<li><b>{_e(incident['title'])}</b> ({where}): {values}</li>"


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}"
    "td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #ddd}"
    "tr.this{background:#fff3c4}.verdict{font-size:1.4rem}"
)


def as_html(state: dict[str, Any]) -> bytes:
    alert = state["event"]
    verdict = state["conclusion"]
    rows = "".join(_row(e, highlight=e["uid"] == alert["uid"]) for e in state.get("timeline", []))
    incidents = "".join(_incident(i) for i in state.get("incidents", [])) or "<li>none</li>"
    reasons = "".join(f"<li>{_e(r)}</li>" for r in verdict["reasons"])
    chain = " → ".join(_e(c) for c in verdict.get("attack_chain", [])) or "none"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Needle investigation {_e(state["investigation_id"])}</title>
<style>{_STYLE}</style>
</head><body>
<h1>{_e(alert["title"])}</h1>
<p class="verdict">Verdict: <b>{_e(verdict["verdict"])}</b> (confidence {_e(verdict["confidence"])})</p>
<table>
<tr><th>Entity</th><td>{_e(alert["entity_id"])}</td></tr>
<tr><th>Source</th><td>{_e(alert["source"])} alert {_e(alert["vendor_id"])}</td></tr>
<tr><th>Console</th><td>{_link(alert.get("console_url"))}</td></tr>
<tr><th>Severity</th><td>{_e(alert["severity"])}</td></tr>
<tr><th>Unusualness score</th><td>{_e(alert.get("score"))}: {_e(alert.get("explanation"))}</td></tr>
<tr><th>User / process</th><td>{_e(alert.get("user"))} / {_e(alert.get("process"))}</td></tr>
<tr><th>ATT&amp;CK chain</th><td>{chain}</td></tr>
</table>
<h2>Why</h2><ul>{reasons}</ul>
<p><small>Rule: {_e(verdict["rule"])}</small></p>
<h2>Incidents</h2><ul>{incidents}</ul>
<h2>Timeline of {_e(alert["entity_id"])} (±{_e(state.get("window_hours"))} h)</h2>
<table><tr><th>Time</th><th>Source</th><th>Title</th><th>Severity</th><th>Score</th><th>Tactics</th></tr>
{rows}</table>
</body></html>
"""
    return page.encode()
