"""Unit tier: one module at a time, no network (sockets are disabled for every test)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_socket

MDE_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mde"


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    pytest_socket.disable_socket()
    yield
    pytest_socket.enable_socket()


@pytest.fixture
def mde_alert() -> Callable[[str], dict[str, Any]]:
    """Load a fresh copy of an MDE `/api/alerts` object from tests/fixtures/mde/<name>.json."""

    def load(name: str) -> dict[str, Any]:
        data = json.loads((MDE_FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
        assert isinstance(data, dict), f"{name}.json must hold one alert object"
        return data

    return load
