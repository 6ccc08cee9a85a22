"""Starts one Step Functions investigation per alert, idempotently."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING

from needle.model.event import Event
from needle.process_events import summary

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


def investigation_id(event: Event) -> str:
    """One per version of what the alert says: a retry finds the same name, a material vendor
    update gets a new one. Execution names allow [A-Za-z0-9-_] up to 80 characters, which
    vendor ids do not fit."""
    return "inv-" + hashlib.sha256(f"{event.uid}|{event.material_hash()}".encode()).hexdigest()[:40]


class StepFunctionsStarter:
    def __init__(self, sfn: SFNClient, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def start(self, event: Event, name: str | None = None) -> str:
        name = name or investigation_id(event)
        payload = json.dumps({"investigation_id": name, "event": summary(event)})
        # A retried batch finds the investigation already running or done.
        with contextlib.suppress(self._sfn.exceptions.ExecutionAlreadyExists):
            self._sfn.start_execution(stateMachineArn=self._arn, name=name, input=payload)
        return name
