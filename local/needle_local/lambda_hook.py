"""Runs Lambda handlers in this process: the one hook every invoke path goes through.

moto's Lambda needs Docker. `install()` replaces `LambdaFunction._invoke_lambda` once, so
direct invokes, Step Functions tasks and the stream pump all run the handler from the
function's CodeUri with the function's own Environment, and its output lands in the function's
CloudWatch log group as it would in AWS. A contract test pins this seam to the moto version.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.awslambda.models import LambdaFunction

original_invoke_lambda = LambdaFunction._invoke_lambda  # kept for the contract test
_lock = threading.RLock()
_registry: dict[str, tuple[Path, str]] = {}
_modules: dict[tuple[str, str], ModuleType] = {}
_installed = False
_local = threading.local()
base_env: dict[str, str] = {}


class _InvocationOutput(io.TextIOBase):
    """stdout seen by handlers: the current invocation's log buffer, else the real stdout."""

    def write(self, text: str) -> int:
        buffer: io.StringIO | None = getattr(_local, "buffer", None)
        if buffer is not None:
            return buffer.write(text)
        return sys.__stdout__.write(text) if sys.__stdout__ else len(text)

    def writable(self) -> bool:
        return True


_output = _InvocationOutput()


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def register(function_name: str, code_dir: Path, handler: str) -> None:
    """Tell the hook where `function_name`'s code lives (`handler` is `module.function`)."""
    _registry[function_name] = (code_dir, handler)


def install() -> None:
    global _installed
    if not _installed:
        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
        _installed = True


def _invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    if self.function_name not in _registry:
        return json.dumps({"errorMessage": f"no local code for {self.function_name}"}), True, ""
    if isinstance(event, str | bytes):
        event = json.loads(event or "{}")
    env = {
        **base_env,
        **{k: str(v) for k, v in (self.environment_vars or {}).items()},
        "AWS_REGION": self.region,
        "AWS_DEFAULT_REGION": self.region,
        "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
        "_HANDLER": self.handler,
    }
    context = LambdaContext(
        function_name=self.function_name,
        invoked_function_arn=self.function_arn,
        memory_limit_in_mb=int(self.memory_size or 128),
        aws_request_id=str(uuid.uuid4()),
        log_group_name=self.logs_group_name,
    )
    buffer = io.StringIO()
    with _lock, _environment(env):
        _local.buffer = buffer
        # print() (powertools' EMF metrics) writes to whatever sys.stdout is at call time.
        real_stdout, sys.stdout = sys.stdout, _output
        try:
            function = _handler(self.function_name)
            result = function(event, context)
            payload, errored = json.dumps(result, default=str), False
        except Exception as exc:  # a handler error is the function's error, not the runtime's
            buffer.write(traceback.format_exc())
            payload = json.dumps({"errorMessage": str(exc)[:1000], "errorType": type(exc).__name__})
            errored = True
        finally:
            sys.stdout = real_stdout
            _local.buffer = None
    logs = buffer.getvalue()
    self.logs_backend.ensure_log_group(self.logs_group_name)
    self.save_logs(logs or "(no output)")
    return payload, errored, logs


def _handler(function_name: str) -> Any:
    code_dir, handler = _registry[function_name]
    module_name, _, attr = handler.rpartition(".")
    key = (function_name, module_name)
    if key not in _modules:
        path = code_dir / f"{module_name}.py"
        spec = importlib.util.spec_from_file_location(f"needle_fn_{abs(hash(key))}_{module_name}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        # A container's stdout is its log: handlers bind their log handlers to it at import.
        real_stdout = sys.stdout
        sys.stdout = _output
        try:
            spec.loader.exec_module(module)
        finally:
            sys.stdout = real_stdout
        _modules[key] = module
    return getattr(_modules[key], attr)


def reset() -> None:
    """Forget loaded handler modules (a cold start for every function)."""
    with _lock:
        _modules.clear()


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """Set the function's variables for the call, then put the previous values back.

    Keys are never deleted: other threads (Step Functions workers, urllib's proxy lookup) iterate
    os.environ concurrently, and a key vanishing or appearing mid-iteration breaks them.
    EmbeddedAws pre-sets every function's keys at start (`preset`), so a call only overwrites.
    """
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value


def preset(variables: dict[str, str]) -> None:
    """Create every key any function will set, once, before threads start reading."""
    for key, value in variables.items():
        os.environ.setdefault(key, value)
