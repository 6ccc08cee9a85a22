"""Reading deployment settings from the environment, failing fast at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping

from needle.store.tables import TableNames, bind


def required(name: str, env: Mapping[str, str] = os.environ) -> str:
    value = env.get(name)
    if not value:
        raise RuntimeError(f"missing environment variable {name}")
    return value


def region(env: Mapping[str, str] = os.environ) -> str:
    """Lambda sets AWS_REGION; a missing region is a deployment error, never a silent default."""
    return required("AWS_REGION", env)


def bind_tables(env: Mapping[str, str] = os.environ) -> None:
    bind(TableNames.from_env(env), region(env))
