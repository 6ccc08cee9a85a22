"""needle.investigate.report: HTML that escapes every alert field, JSON, and S3 keys."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from needle.investigate.report import as_html, as_json, report_key
from needle.investigate.verdict import conclude

pytestmark = pytest.mark.unit

CONSOLE = "https://security.microsoft.com/alerts/da638771903415527713_-583319074"
SCRIPT = "<script>alert(1)</script>"


def alert(**overrides: Any) -> dict[str, Any]:
    return {
        "uid": "mde:da638771903415527713_-583319074",
        "entity_id": "ent-eng-lt-117",
        "sk": "2025-05-12T14:01:07.331Z#edr_alert#mde:da638771903415527713_-583319074",
        "source": "mde",
        "vendor_id": "da638771903415527713_-583319074",
        "kind": "edr_alert",
        "time": "2025-05-12T14:01:07.331Z",
        "title": "LSASS memory dumped with comsvcs.dll MiniDump",
        "severity": "High",
        "severity_id": 4,
        "status": "new",
        "tactics": ["CredentialAccess"],
        "techniques": ["T1003.001"],
        "user": "CORP\\jdoe",
        "process": "rundll32.exe",
        "console_url": CONSOLE,
        "score": 91,
        "explanation": "score 91: first time this alert is seen on ent-eng-lt-117",
        "incident_ids": [],
        **overrides,
    }


def investigation(event: dict[str, Any], incidents: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return conclude(
        {
            "investigation_id": "inv-5a0c2e9d",
            "event": event,
            "timeline": [event],
            "incidents": incidents or [],
            "window_hours": 24.0,
        }
    )


@pytest.fixture
def hostile() -> dict[str, Any]:
    """An investigation where every attacker-influenced field carries markup."""
    event = alert(
        title=SCRIPT,
        user='CORP\\"><img src=x onerror=alert(2)>',
        process='cmd.exe /c "echo <svg onload=alert(3)> & del C:\\x"',
        explanation="first time <b>seen</b>",
        tactics=["<i>Execution</i>"],
        vendor_id="da1<script>",
        entity_id="ent-<u>x</u>",
    )
    incident = {
        "id": "inc-<1>",
        "rule": "multi<tactic>",
        "title": SCRIPT,
        "values": ["<Execution>", "TA0006"],
    }
    return investigation(event, [incident])


def test_html_escapes_attacker_controlled_fields(hostile: dict[str, Any]) -> None:
    # WHEN an investigation full of markup is rendered
    html = as_html(hostile).decode()
    # THEN no markup from the alert survives as markup, only as escaped text
    assert "<script" not in html.lower()
    assert "<img" not in html
    assert "<svg" not in html
    assert "<b>seen" not in html
    assert "<i>Execution" not in html
    assert "<u>x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&quot;&gt;" in html
    assert "multi&lt;tactic&gt;" in html


def test_html_only_contains_its_own_tags(hostile: dict[str, Any]) -> None:
    html = as_html(hostile).decode()

    tags = set(re.findall(r"<\s*/?\s*([a-zA-Z][a-zA-Z0-9-]*)", html))

    assert tags <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "p",
        "b",
        "table",
        "tr",
        "th",
        "td",
        "ul",
        "li",
        "small",
        "a",
    }


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<b>x</b>",
    ],
)
def test_a_non_http_console_url_is_not_a_link(url: str) -> None:
    html = as_html(investigation(alert(console_url=url))).decode()

    assert "<a " not in html
    assert "href=" not in html
    assert "javascript:alert" in html.lower() or "data:text/html" in html


def test_an_https_console_url_is_a_safe_link() -> None:
    html = as_html(investigation(alert())).decode()

    assert f'<a href="{CONSOLE}" rel="noopener noreferrer">{CONSOLE}</a>' in html


def test_a_console_url_cannot_break_out_of_its_attribute() -> None:
    url = 'https://security.microsoft.com/alerts/x" onmouseover="alert(1)'

    html = as_html(investigation(alert(console_url=url))).decode()

    assert '" onmouseover="' not in html
    assert 'href="https://security.microsoft.com/alerts/x&quot; onmouseover=&quot;alert(1)"' in html


def test_a_missing_console_url_renders_empty() -> None:
    html = as_html(investigation(alert(console_url=None))).decode()

    assert "<th>Console</th><td></td>" in html


def test_html_shows_the_verdict_and_the_alert() -> None:
    html = as_html(investigation(alert())).decode()

    assert "Verdict: <b>escalate</b> (confidence 0.7)" in html
    assert "<h1>LSASS memory dumped with comsvcs.dll MiniDump</h1>" in html
    assert "TA0006 Credential Access" in html
    assert '<tr class="this">' in html
    assert "default-src 'none'" in html


def test_json_is_valid_and_carries_entity_console_and_score(hostile: dict[str, Any]) -> None:
    doc = json.loads(as_json(investigation(alert())))

    assert doc["investigation_id"] == "inv-5a0c2e9d"
    assert doc["entity_id"] == "ent-eng-lt-117"
    assert doc["console_url"] == CONSOLE
    assert doc["score"] == 91
    assert doc["explanation"].startswith("score 91")
    assert doc["conclusion"]["verdict"] == "escalate"
    assert doc["alert"]["uid"] == "mde:da638771903415527713_-583319074"
    assert doc["timeline"] == [doc["alert"]]
    # markup is data in JSON, and survives unchanged
    assert json.loads(as_json(hostile))["alert"]["title"] == SCRIPT


def test_json_of_an_unscored_alert_has_null_score() -> None:
    doc = json.loads(as_json(investigation(alert(score=None, console_url=None))))

    assert doc["score"] is None
    assert doc["console_url"] is None


@pytest.mark.parametrize("ext", ["json", "html"])
def test_report_key_is_partitioned_by_day(ext: str) -> None:
    key = report_key("inv-5a0c2e9d", datetime(2025, 5, 2, 23, 59, 59, tzinfo=UTC), ext)

    assert key == f"reports/2025/05/02/inv-5a0c2e9d.{ext}"
    assert re.fullmatch(r"reports/\d{4}/\d{2}/\d{2}/[^/]+\.(json|html)", key)
