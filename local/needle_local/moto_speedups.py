"""Two moto costs that grow with the data, removed without changing a single answer.

Measured with moto 5.2.5 (a replay of 2,000 alerts spent most of its time in these two):

- **Item serialization.** moto builds every DynamoDB response by walking botocore's shapes:
  each AttributeValue is a structure of ten members, each looked up under several aliases,
  ~0.1 ms per value, so one 25-attribute item costs ~2.5 ms in GetItem, Query or GetRecords.
  The backend already holds AttributeValues in wire form ({"S": "..."}), so the fast path
  hands a well-formed value through as it is. Anything it does not recognise (binary values,
  which moto base64-encodes on the way out; a non-bool BOOL) takes moto's own path.
- **Query reads the whole table.** `Table.query` on the base table sorts *every* item of the
  table to keep those of one partition, so a timeline read slows down with every alert stored
  (0.2 s per Query at 50,000 items). The fast path gives that one call only the partition.
  Index queries keep moto's path (an index partition is not a table partition).
- **A client per Lambda task.** moto's Step Functions interpreter builds a boto3 client
  (~30 ms) for every Lambda task it runs; one per region serves them all (clients are
  thread-safe; only creating them is not, hence the lock).

`tests/integration/test_moto_speedups.py` pins both to moto's own answers.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb.models.table import Table
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

_original_serialize_structure = BaseJSONSerializer._serialize_type_structure
_original_query = Table.query
_original_all_items = Table.all_items
_original_task_client = lambda_eval_utils.boto_client_for  # type: ignore[attr-defined]
_partition = threading.local()
_task_clients: dict[tuple[str, str], Any] = {}
_task_clients_lock = threading.Lock()
_installed = False
_SCALARS: dict[str, type] = {"S": str, "N": str, "BOOL": bool}


def install() -> None:
    """Patch moto once per process (idempotent)."""
    global _installed
    if _installed:
        return
    BaseJSONSerializer._serialize_type_structure = _serialize_structure  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
    lambda_eval_utils.boto_client_for = _task_client  # type: ignore[attr-defined]
    _installed = True


def uninstall() -> None:
    """Put moto's own code back (the contract test compares both)."""
    global _installed
    BaseJSONSerializer._serialize_type_structure = _original_serialize_structure  # type: ignore[method-assign]
    Table.query = _original_query  # type: ignore[method-assign]
    Table.all_items = _original_all_items  # type: ignore[method-assign]
    lambda_eval_utils.boto_client_for = _original_task_client  # type: ignore[attr-defined]
    _task_clients.clear()
    _installed = False


# -- serialization ---------------------------------------------------------------------------


def wire_form(value: Any) -> Any | None:
    """`value` itself when it is an AttributeValue already in wire form, else None."""
    if type(value) is not dict or len(value) != 1:
        return None
    ((tag, inner),) = value.items()
    scalar = _SCALARS.get(tag)
    if scalar is not None:
        return value if type(inner) is scalar else None
    if tag == "NULL":
        return value if inner is True else None
    if tag in ("SS", "NS"):
        return value if type(inner) is list and all(type(x) is str for x in inner) else None
    if tag == "L":
        if type(inner) is not list:
            return None
        return value if all(wire_form(x) is not None for x in inner) else None
    if tag == "M":
        if type(inner) is not dict:
            return None
        return value if all(type(k) is str and wire_form(v) is not None for k, v in inner.items()) else None
    return None


def _serialize_structure(self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str) -> None:
    if key and shape.name == "AttributeValue":
        ready = wire_form(value)
        if ready is not None:
            self._default_serialize(serialized, ready, shape, key)
            return
    _original_serialize_structure(self, serialized, value, shape, key)


# -- partition-local query -------------------------------------------------------------------


def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name or hash_key is None:
        return _original_query(self, hash_key, *args, **kwargs)
    _partition.key = hash_key
    try:
        return _original_query(self, hash_key, *args, **kwargs)
    finally:
        _partition.key = None


def _all_items(self: Table) -> Any:
    key = getattr(_partition, "key", None)
    if key is None:
        return _original_all_items(self)
    # Set by _query on this thread only: another thread's Scan still sees the whole table.
    found = self.items.get(key)
    if found is None:
        return []
    if not self.range_key_attr:
        return [found]
    return sorted(found.values(), key=lambda item: item.range_key)


# -- Step Functions task clients ---------------------------------------------------------------


def _task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    # moto's own function ignores the credentials too: every call gets fixed test keys.
    with _task_clients_lock:
        key = (region, service)
        if key not in _task_clients:
            _task_clients[key] = _original_task_client(region, service, state_credentials)
        return _task_clients[key]
