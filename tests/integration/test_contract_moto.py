"""Contract: the moto version and the seam the in-process Lambda hook replaces.

The embedded AWS depends on moto internals (LambdaFunction._invoke_lambda, the Step Functions
interpreter invoking through it). A moto upgrade must fail here first, not somewhere deep in e2e.
"""

from __future__ import annotations

import inspect
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from moto.awslambda.models import LambdaFunction

from needle_local import lambda_hook

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_moto_is_the_pinned_version() -> None:
    lock = (ROOT / "requirements" / "dev.lock").read_text().splitlines()
    assert "moto==5.2.5" in lock
    assert version("moto") == "5.2.5"


def test_the_hooked_seam_has_the_shape_the_hook_implements() -> None:
    original = lambda_hook.original_invoke_lambda
    assert list(inspect.signature(original).parameters) == ["self", "event"]
    # moto's invoke() is the single caller that every invoke path (API, Step Functions) uses
    assert "self._invoke_lambda(event=body)" in inspect.getsource(LambdaFunction.invoke)


def test_the_hook_is_installed_once_the_embedded_aws_starts(aws: Any) -> None:
    assert LambdaFunction._invoke_lambda is lambda_hook._invoke_lambda


def test_an_invoke_runs_the_handler_in_process_with_the_functions_environment(aws: Any) -> None:
    sample = json.loads((ROOT / "events" / "ConcludeFunction.json").read_text())
    result = aws.invoke("ConcludeFunction", sample)
    assert result["conclusion"]["verdict"] in {"escalate", "benign", "inconclusive"}
    lines = aws.function_logs("ConcludeFunction")
    assert any(aws.physical["ConcludeFunction"] in line for line in lines)  # powertools saw the context


def test_a_handler_error_is_a_function_error_not_a_runtime_crash(aws: Any) -> None:
    with pytest.raises(RuntimeError, match="ConcludeFunction failed: KeyError"):
        aws.invoke("ConcludeFunction", {"not": "an investigation"})
