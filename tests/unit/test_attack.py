"""needle.model.attack: vendor tactic labels -> ATT&CK ids, and kill-chain order."""

from __future__ import annotations

import pytest

from needle.model.attack import TACTICS, is_technique_id, tactic, tactic_order

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("CredentialAccess", ("TA0006", "Credential Access")),
        ("Lateral Movement", ("TA0008", "Lateral Movement")),
        ("LateralMovement", ("TA0008", "Lateral Movement")),
        ("lateral_movement", ("TA0008", "Lateral Movement")),
        ("TA0008", ("TA0008", "Lateral Movement")),
        ("ta0008", ("TA0008", "Lateral Movement")),
        ("CommandAndControl", ("TA0011", "Command and Control")),
        ("Command and Control", ("TA0011", "Command and Control")),
        ("PrivilegeEscalation", ("TA0004", "Privilege Escalation")),
        ("Initial Access", ("TA0001", "Initial Access")),
        ("Exfiltration", ("TA0010", "Exfiltration")),
    ],
)
def test_tactic_resolves_vendor_labels_and_ids(label: str, expected: tuple[str, str]) -> None:
    assert tactic(label) == expected


@pytest.mark.parametrize(
    "label", ["Malware", "SuspiciousActivity", "UnwantedSoftware", "", "TA", "TA9999", "T1003.001"]
)
def test_tactic_returns_none_for_what_is_not_a_tactic(label: str) -> None:
    assert tactic(label) is None


def test_a_label_resolves_the_same_when_asked_again_and_when_too_long_to_be_remembered() -> None:
    # Short labels are remembered after the first lookup, longer ones are looked up each time
    assert tactic("CredentialAccess") == tactic("CredentialAccess") == ("TA0006", "Credential Access")
    assert tactic("Credential Access" + " " * 100) == ("TA0006", "Credential Access")
    assert tactic("Malware" + " " * 100) is None


def test_every_tactic_resolves_from_its_own_name_and_id() -> None:
    for uid, name in TACTICS:
        assert tactic(name) == (uid, name)
        assert tactic(uid) == (uid, name)


def test_tactic_order_follows_the_kill_chain() -> None:
    # GIVEN tactic ids in scrambled order
    scrambled = ["TA0040", "TA0010", "TA0002", "TA0011", "TA0043", "TA0008", "TA0006"]
    # WHEN sorted by kill-chain position
    ordered = sorted(scrambled, key=tactic_order)
    # THEN reconnaissance comes first and command-and-control precedes exfiltration
    assert ordered == ["TA0043", "TA0002", "TA0006", "TA0008", "TA0011", "TA0010", "TA0040"]


def test_unknown_tactics_sort_after_every_known_one() -> None:
    assert tactic_order("Malware") == len(TACTICS)
    assert all(tactic_order(uid) < tactic_order("TA9999") for uid, _ in TACTICS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("T1003", True), ("T1003.001", True), ("T1003.1", False), ("TA0006", False), ("t1003", False)],
)
def test_is_technique_id(value: str, expected: bool) -> None:
    assert is_technique_id(value) is expected
