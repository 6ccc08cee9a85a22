"""Binds the pynamodb models to the table names a function was deployed with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from needle.store import items


@dataclass(frozen=True)
class TableNames:
    events: str
    entities: str
    models: str
    incidents: str
    state: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TableNames:
        """Read EVENTS_TABLE, ENTITIES_TABLE, ...; a missing name fails at start, never defaults."""
        missing = [k for k in _VARS if not env.get(k)]
        if missing:
            raise RuntimeError(f"missing environment variables: {', '.join(missing)}")
        return cls(*(env[k] for k in _VARS))


_VARS = ("EVENTS_TABLE", "ENTITIES_TABLE", "MODELS_TABLE", "INCIDENTS_TABLE", "STATE_TABLE")


def bind(names: TableNames, region: str) -> None:
    """Point every model at its deployed table (pynamodb keeps table names on the class)."""
    for model, name in (
        (items.EventItem, names.events),
        (items.EntityItem, names.entities),
        (items.ModelItem, names.models),
        (items.IncidentItem, names.incidents),
        (items.StateItem, names.state),
    ):
        model.Meta.table_name = name
        model.Meta.region = region
        model._connection = None
