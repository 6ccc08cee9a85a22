"""moto costs that grow with the data or repeat per request, removed without changing an answer.

Measured with moto 5.2.5 (a replay of 2,000 to 10,000 alerts spent most of its time in these):

- **Item serialization.** moto builds every DynamoDB response by walking botocore's shapes:
  each AttributeValue is a structure of ten members, each looked up under several aliases,
  ~0.1 ms per value, so one 25-attribute item costs ~2.5 ms in GetItem, Query or GetRecords.
  The backend already holds AttributeValues in wire form ({"S": "..."}), so the fast path
  hands a well-formed value through as it is. Anything it does not recognise (binary values,
  which moto base64-encodes on the way out; a non-bool BOOL) takes moto's own path. Requests
  are parsed the same way in reverse: a wire-form AttributeValue is taken as it came (binary
  values are still decoded by moto).
- **Query reads the whole table.** `Table.query` on the base table sorts *every* item of the
  table to keep those of one partition, so a timeline read slows down with every alert stored
  (0.2 s per Query at 50,000 items). The fast path gives that one call only the partition.
  Index queries keep moto's path (an index partition is not a table partition).
- **A client per Lambda task.** moto's Step Functions interpreter builds a boto3 client
  (~30 ms) for every Lambda task it runs; one per region serves them all (clients are
  thread-safe; only creating them is not, hence the lock).
- **UpdateItem re-parses and deep-copies.** For every UpdateItem moto parses the expression
  twice, deep-copies the whole item twice, walks a validator over the AST and serializes the
  whole item to compute a reply that `ReturnValues=NONE` then drops: ~4 ms for an event item.
  The forms Needle writes (`SET #a = :v`, `SET #a = if_not_exists(#a, :v)`, `ADD #n :n` on an
  existing item, nothing asked back, no key or index attribute touched) are applied directly,
  with the same stream record. A condition is evaluated by moto's own condition parser, and
  only one that holds is taken (a lease refresh: `attribute_not_exists(#l) OR #l < :v`);
  anything else, a failed condition included, takes moto's path, which owns every error.
- **Projections convert the item once per name.** A ProjectionExpression of n names turns the
  whole item into plain JSON n times (a timeline read names 20). When every name is a
  top-level attribute, it is converted once; paths and list indexes take moto's path.
- **Every attribute re-sums the item.** moto's item dict checks the 400 KB bound on every
  insert by summing the whole item, so building an item of n attributes costs n² sizes. Sizes
  are never negative, so checking the finished item once raises exactly when moto would.
- **Per-request overhead.** moto lists a handler class's methods (inspect.getmembers) on every
  request; it is cached per class. botocore signs every request (SigV4) that moto then ignores;
  signing is skipped while installed, except for S3 (moto applies bucket policies to the
  signer) and presigned URLs. botocore also re-sanitizes the same User-Agent parts for every
  request; that pure function is memoized.

`tests/integration/test_moto_speedups.py` pins them to moto's own answers.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any, cast

from botocore import useragent
from botocore.signers import RequestSigner
from moto.core import responses as core_responses
from moto.core.parse import BaseJSONParser
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb.comparisons import create_condition_expression_parser
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict, serializer
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

_original_serialize_structure = BaseJSONSerializer._serialize_type_structure
_original_parse_structure = BaseJSONParser._parse_structure
_original_query = Table.query
_original_all_items = Table.all_items
_original_task_client = lambda_eval_utils.boto_client_for  # type: ignore[attr-defined]
_original_update_item = DynamoHandler.update_item
_original_method_names = core_responses.method_names_from_class  # type: ignore[attr-defined]
_original_sign = RequestSigner.sign
_original_item_init = Item.__init__
_original_sanitize = useragent.sanitize_user_agent_string_component
_original_project = Item.project
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
    BaseJSONParser._parse_structure = _parse_structure  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
    lambda_eval_utils.boto_client_for = _task_client  # type: ignore[attr-defined]
    DynamoHandler.update_item = _update_item  # type: ignore[method-assign]
    core_responses.method_names_from_class = _method_names  # type: ignore[attr-defined,assignment]
    RequestSigner.sign = _sign  # type: ignore[method-assign]
    Item.__init__ = _item_init  # type: ignore[method-assign]
    useragent.sanitize_user_agent_string_component = _sanitize
    Item.project = _project  # type: ignore[method-assign]
    _installed = True


def uninstall() -> None:
    """Put moto's own code back (the contract test compares both)."""
    global _installed
    BaseJSONSerializer._serialize_type_structure = _original_serialize_structure  # type: ignore[method-assign]
    BaseJSONParser._parse_structure = _original_parse_structure  # type: ignore[method-assign]
    Table.query = _original_query  # type: ignore[method-assign]
    Table.all_items = _original_all_items  # type: ignore[method-assign]
    lambda_eval_utils.boto_client_for = _original_task_client  # type: ignore[attr-defined]
    DynamoHandler.update_item = _original_update_item  # type: ignore[method-assign]
    core_responses.method_names_from_class = _original_method_names  # type: ignore[attr-defined]
    RequestSigner.sign = _original_sign  # type: ignore[method-assign]
    Item.__init__ = _original_item_init  # type: ignore[method-assign]
    useragent.sanitize_user_agent_string_component = _original_sanitize
    Item.project = _original_project  # type: ignore[method-assign]
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


def _parse_structure(self: BaseJSONParser, shape: Any, value: Any) -> Any:
    if shape.name == "AttributeValue" and self.MAP_TYPE is dict:
        ready = wire_form(value)
        if ready is not None:
            return ready
    return _original_parse_structure(self, shape, value)  # type: ignore[no-untyped-call]


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


# -- UpdateItem: plain SET or ADD on an existing item -----------------------------------------

_SET_ITEM = r"#\w+\s*=\s*(?::\w+|if_not_exists\s*\(\s*#\w+\s*,\s*:\w+\s*\))"
_ADD_ITEM = r"#\w+\s+:\w+"
_PLAIN_SET = re.compile(rf"SET\s+{_SET_ITEM}(?:\s*,\s*{_SET_ITEM})*")
_PLAIN_ADD = re.compile(rf"ADD\s+{_ADD_ITEM}(?:\s*,\s*{_ADD_ITEM})*")
_ASSIGNMENT = re.compile(
    r"(#\w+)\s*=\s*(?:(:\w+)|if_not_exists\s*\(\s*(#\w+)\s*,\s*(:\w+)\s*\))|(#\w+)\s+(:\w+)"
)
_NAME = re.compile(r"#\w+")
_VALUE = re.compile(r":\w+")
# moto answers ConsumedCapacity whatever ReturnConsumedCapacity asks (pynamodb asks TOTAL).
_PLAIN_REQUEST = frozenset(
    {
        "TableName",
        "Key",
        "UpdateExpression",
        "ExpressionAttributeNames",
        "ExpressionAttributeValues",
        "ReturnValues",
        "ReturnConsumedCapacity",
        "ConditionExpression",
    }
)
# moto's own bound (LimitedSizeDict): between the measured 409 and 410 KB.
_MAX_ITEM_BYTES = 405_000


def _update_item(self: DynamoHandler) -> Any:
    done = _plain_update(self)
    return done if done is not None else _original_update_item(self)


def _plain_update(handler: DynamoHandler) -> DynamoResult | None:
    """The UpdateItem applied as moto would, or None to let moto do it (and raise its errors).

    Taken: one `SET` clause of `#a = :v` or `#a = if_not_exists(#b, :v)`, or one `ADD` clause of
    `#a :n` on numbers, on an item that exists, touching no key or index attribute, with plain
    values, every placeholder used, no condition or one that holds, and nothing asked back.
    """
    body: dict[str, Any] = handler.body
    if not set(body) <= _PLAIN_REQUEST or body.get("ReturnValues", "NONE") != "NONE":
        return None
    expression = body.get("UpdateExpression")
    if type(expression) is not str:
        return None
    expression = expression.strip()
    adding = _PLAIN_ADD.fullmatch(expression) is not None
    if not adding and _PLAIN_SET.fullmatch(expression) is None:
        return None
    condition = body.get("ConditionExpression")
    if condition is not None and (type(condition) is not str or not condition.strip()):
        return None
    names: dict[str, Any] = body.get("ExpressionAttributeNames") or {}
    values: dict[str, Any] = body.get("ExpressionAttributeValues") or {}
    both = f"{expression} {condition or ''}"
    if set(_NAME.findall(both)) != set(names) or set(_VALUE.findall(both)) != set(values):
        return None  # an unused or missing placeholder: moto's validation error
    if not all(_plain(v) for v in values.values()):
        return None
    table = handler.dynamodb_backend.tables.get(str(body.get("TableName")))
    key = body.get("Key")
    if table is None or type(key) is not dict or set(key) != set(table.table_key_attrs):
        return None
    if not all(_plain(v) for v in key.values()):
        return None
    item = table.get_item(
        DynamoType(key[table.hash_key_attr]),
        DynamoType(key[table.range_key_attr]) if table.range_key_attr else None,
    )
    if item is None:
        return None  # UpdateItem creates it: moto's path
    if condition and not _holds(condition, names, values, item):
        return None  # moto's path raises ConditionalCheckFailed (or its parse error)
    fresh: dict[str, DynamoType] = {}
    for target_name, value, source_name, default, add_name, add_value in _ASSIGNMENT.findall(expression):
        target = names[target_name or add_name]
        if target in fresh or target in table.attribute_keys:
            return None
        if add_name:
            added = DynamoType(values[add_value])
            existing = item.attrs.get(target)
            if not added.is_number() or (existing is not None and not existing.is_number()):
                return None
            fresh[target] = added if existing is None else existing + added
        elif source_name:
            source = names[source_name]
            fresh[target] = item.attrs[source] if source in item.attrs else DynamoType(values[default])
        else:
            fresh[target] = DynamoType(values[value])
    size = item.size() + sum(
        bytesize(t) + value.size() - (bytesize(t) + item.attrs[t].size() if t in item.attrs else 0)
        for t, value in fresh.items()
    )
    if size > _MAX_ITEM_BYTES:
        return None
    before = cast(Item, Item.__new__(Item))
    before.hash_key, before.range_key = item.hash_key, item.range_key
    before.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(before.attrs, item.attrs)  # values are replaced below, never changed in place
    for target, new_value in fresh.items():
        dict.__setitem__(item.attrs, target, new_value)
    if table.stream_shard is not None:
        table.stream_shard.add(before, item)
    return DynamoResult({"ConsumedCapacity": {"TableName": body["TableName"], "CapacityUnits": 0.5}})


def _holds(condition: str, names: dict[str, Any], values: dict[str, Any], item: Item) -> bool:
    try:
        return bool(create_condition_expression_parser(condition, names, values).parse().expr(item))
    except Exception:  # a parse error: moto's own path raises it
        return False


def _plain(value: Any) -> bool:
    """A well-formed S, N, BOOL, NULL, L or M value (no sets, no binary: moto checks those)."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((tag, inner),) = value.items()
    if tag == "S":
        return type(inner) is str
    if tag == "N":
        return type(inner) is str and _is_number(inner)
    if tag == "BOOL":
        return type(inner) is bool
    if tag == "NULL":
        return inner is True
    if tag == "L":
        return type(inner) is list and all(_plain(x) for x in inner)
    if tag == "M":
        return type(inner) is dict and all(type(k) is str and _plain(v) for k, v in inner.items())
    return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


# -- projections -------------------------------------------------------------------------------


def _project(self: Item, projection_expressions: list[list[str]]) -> Item:
    if not all(len(path) == 1 and "[" not in path[0] for path in projection_expressions):
        return _original_project(self, projection_expressions)
    regular = self.to_regular_json()
    kept = {path[0]: regular[path[0]] for path in projection_expressions if path[0] in regular}
    attrs: dict[str, Any] = dict(serializer.serialize(kept)["M"])
    return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs)


# -- item construction -------------------------------------------------------------------------


def _item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    self.hash_key = hash_key
    self.range_key = range_key
    self.attrs = LimitedSizeDict()
    for key, value in attrs.items():
        dict.__setitem__(self.attrs, key, DynamoType(value))
    if sum(bytesize(key) + value.size() for key, value in self.attrs.items()) > _MAX_ITEM_BYTES:
        raise ItemSizeTooLarge


# -- per-request overhead ------------------------------------------------------------------------


@functools.cache
def _method_names(clazz: type) -> frozenset[str]:
    return frozenset(_original_method_names(clazz))


@functools.lru_cache(maxsize=4096)
def _sanitize(raw_str: str, allow_hash: bool = False) -> str:
    return str(_original_sanitize(raw_str, allow_hash))


def _sign(self: RequestSigner, operation_name: str, request: Any, *args: Any, **kwargs: Any) -> Any:
    signing_type = args[1] if len(args) > 1 else kwargs.get("signing_type", "standard")
    # moto reads the region from the URL and the account from its default. S3 stays signed:
    # moto applies bucket policies, and an unsigned request is anonymous to them.
    if signing_type == "standard" and self.signing_name != "s3":
        return None
    return _original_sign(self, operation_name, request, *args, **kwargs)
