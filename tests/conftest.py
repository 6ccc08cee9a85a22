"""Shared fixtures: the embedded AWS from template.yaml and the MDE simulator on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

# Never reach a real account from a test, whatever the developer's shell has configured.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)

SIM_SECRET = "sim-secret-7f3a9c"
SIM_CREDENTIALS = {"tenant_id": "sim-tenant", "client_id": "sim-client", "client_secret": SIM_SECRET}


class SimClock:
    """The simulated vendor's clock, moved by tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))


@pytest.fixture
def mde(sim_clock: SimClock) -> Iterator[Any]:
    from needle_local.simulators.mde import MdeSimulator

    with MdeSimulator(clock=sim_clock, client_secret=SIM_SECRET) as simulator:
        yield simulator


@pytest.fixture
def aws(mde: Any) -> Iterator[Any]:
    from needle_local.embedded import EmbeddedAws

    warnings.filterwarnings("ignore", category=UserWarning, module="moto")
    logging.getLogger("moto").setLevel(logging.ERROR)
    parameters = {
        "EnableMde": "true",
        "MdeApiBaseUrl": mde.base_url,
        "MdeLoginBaseUrl": mde.base_url,
        "PollOverlapSeconds": "300",
        "LogLevel": "INFO",
    }
    with EmbeddedAws(parameters=parameters, secrets={"MdeCredentials": SIM_CREDENTIALS}) as embedded:
        yield embedded


@pytest.fixture
def bound(aws: Any) -> Any:
    """The embedded AWS with the stores' models bound to its tables (store adapter tests)."""
    from tests.support import bind_stack_tables

    bind_stack_tables(aws)
    return aws
