"""MITRE ATT&CK Enterprise tactics: ids, names and kill-chain order."""

from __future__ import annotations

import re
from functools import lru_cache

# Kill-chain order matters: investigation reports name an attack chain in this order.
TACTICS: tuple[tuple[str, str], ...] = (
    ("TA0043", "Reconnaissance"),
    ("TA0042", "Resource Development"),
    ("TA0001", "Initial Access"),
    ("TA0002", "Execution"),
    ("TA0003", "Persistence"),
    ("TA0004", "Privilege Escalation"),
    ("TA0005", "Defense Evasion"),
    ("TA0006", "Credential Access"),
    ("TA0007", "Discovery"),
    ("TA0008", "Lateral Movement"),
    ("TA0009", "Collection"),
    ("TA0011", "Command and Control"),
    ("TA0010", "Exfiltration"),
    ("TA0040", "Impact"),
)

_BY_KEY = {re.sub(r"[^a-z]", "", name.lower()): (uid, name) for uid, name in TACTICS}
_ORDER = {uid: i for i, (uid, _) in enumerate(TACTICS)}
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
_NOT_KEY = re.compile(r"[^a-z0-9]")


# Vendors repeat a few labels on every alert: those are looked up once. Longer ones are not kept,
# so attacker-made labels cannot grow the cache.
_CACHED_LABEL_CHARS = 64


def tactic(label: str) -> tuple[str, str] | None:
    """The (id, name) of a tactic given as a vendor label or id.

    >>> tactic("CredentialAccess")
    ('TA0006', 'Credential Access')
    """
    return _cached_tactic(label) if len(label) <= _CACHED_LABEL_CHARS else _tactic(label)


@lru_cache(maxsize=1024)
def _cached_tactic(label: str) -> tuple[str, str] | None:
    return _tactic(label)


def _tactic(label: str) -> tuple[str, str] | None:
    key = _NOT_KEY.sub("", label.lower())
    if key.upper().startswith("TA") and key[2:].isdigit():
        uid = key.upper()
        return next(((u, n) for u, n in TACTICS if u == uid), None)
    return _BY_KEY.get(key)


def tactic_order(uid: str) -> int:
    """Position in the kill chain; unknown tactics sort last."""
    return _ORDER.get(uid, len(TACTICS))


def is_technique_id(value: str) -> bool:
    return bool(_TECHNIQUE.match(value))
