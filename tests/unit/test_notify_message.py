"""needle.notify.message: the SNS subject, body and filterable message attributes."""

from __future__ import annotations

from typing import Any

import pytest

from needle.notify.message import attributes, body, subject

pytestmark = pytest.mark.unit


def finished(title: str = "LSASS memory dumped with comsvcs.dll MiniDump", **event: Any) -> dict[str, Any]:
    return {
        "investigation_id": "inv-5a0c2e9d",
        "event": {
            "uid": "mde:da638771903415527713_-583319074",
            "entity_id": "ent-eng-lt-117",
            "source": "mde",
            "title": title,
            "severity": "High",
            "score": 91,
            "explanation": "score 91: first time this alert is seen on ent-eng-lt-117",
            "console_url": "https://security.microsoft.com/alerts/da638771903415527713_-583319074",
            **event,
        },
        "conclusion": {
            "verdict": "escalate",
            "confidence": 0.7,
            "reasons": ["severity High and unusualness score 91 (>= 70)"],
        },
    }


def test_attributes_are_filterable_strings() -> None:
    attrs = attributes(finished())

    assert attrs == {
        "severity": {"DataType": "String", "StringValue": "High"},
        "verdict": {"DataType": "String", "StringValue": "escalate"},
        "source": {"DataType": "String", "StringValue": "mde"},
        "entity": {"DataType": "String", "StringValue": "ent-eng-lt-117"},
    }


def test_attribute_values_are_bounded() -> None:
    attrs = attributes(finished(entity_id="ent-" + "x" * 1000))

    assert len(attrs["entity"]["StringValue"]) == 256
    assert attrs["entity"]["StringValue"].startswith("ent-xxx")


def test_subject_names_verdict_title_and_entity() -> None:
    assert subject(finished()) == (
        "[Needle] ESCALATE: LSASS memory dumped with comsvcs.dll MiniDump on ent-eng-lt-117"
    )


@pytest.mark.parametrize(
    "title",
    [
        "Suspicious\nPowerShell\r\ndownload\tcradle",
        "A" * 300,
        "line one\u2028line two\x85line three\x0bvertical\x0cfeed",
        "  spaced   out  \n\n title " + "word " * 40,
    ],
)
def test_subject_is_one_line_of_under_100_characters(title: str) -> None:
    text = subject(finished(title=title))

    assert len(text) <= 99  # SNS subjects must be under 100 characters
    assert text.splitlines() == [text]
    assert text == text.strip()
    assert "  " not in text
    assert text.startswith("[Needle] ESCALATE: ")


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        # ANSI escapes and a bell from the vendor title: each unprintable character becomes a space
        ("Malware \x1b[31mKILLER\x1b[0m\x07 found", "Malware [31mKILLER [0m found"),
        ("nul\x00del\x7fc1\x9bzero\u200bwidth", "nul del c1 zero width"),
        ("bidi \u202egnp.exe\u202c", "bidi gnp.exe"),
    ],
)
def test_subject_has_no_control_characters(title: str, shown: str) -> None:
    text = subject(finished(title=title))

    assert all(ch.isprintable() for ch in text)
    assert text == f"[Needle] ESCALATE: {shown} on ent-eng-lt-117"


def test_body_lists_verdict_reasons_console_and_report() -> None:
    text = body(finished(), "https://reports.example/inv-5a0c2e9d.html")

    lines = text.splitlines()
    assert lines[0] == "Verdict: escalate (confidence 0.7)"
    assert "Entity: ent-eng-lt-117" in lines
    assert "Why: severity High and unusualness score 91 (>= 70)" in lines
    assert lines[-2] == "Console: https://security.microsoft.com/alerts/da638771903415527713_-583319074"
    assert lines[-1] == "Report: https://reports.example/inv-5a0c2e9d.html"
