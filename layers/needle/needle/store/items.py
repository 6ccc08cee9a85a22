"""pynamodb models, one per table of template.yaml (a test checks the keys match)."""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model


class _Unbound:
    table_name = "unbound"  # replaced by needle.store.tables.bind at start
    region = "us-east-1"


class ByUid(GlobalSecondaryIndex["EventItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by_uid"
        projection = KeysOnlyProjection()

    uid = UnicodeAttribute(hash_key=True)


class EventItem(Model):
    class Meta(_Unbound):
        pass

    entity_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    uid = UnicodeAttribute()
    by_uid = ByUid()
    kind = UnicodeAttribute()
    source = UnicodeAttribute()
    vendor_id = UnicodeAttribute()
    time = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    title = UnicodeAttribute()
    severity_id = NumberAttribute()
    status = UnicodeAttribute()
    tactics = ListAttribute[str](default=list)
    techniques = ListAttribute[str](default=list)
    hostname = UnicodeAttribute(null=True)
    device_id = UnicodeAttribute(null=True)
    user = UnicodeAttribute(null=True)
    process = UnicodeAttribute(null=True)
    console_url = UnicodeAttribute(null=True)
    finding = JSONAttribute()
    raw = BinaryAttribute(legacy_encoding=False, null=True)
    content_hash = UnicodeAttribute()
    material_hash = UnicodeAttribute(null=True)
    # True on the write of a materially changed vendor update: the stream filter passes that
    # MODIFY to ProcessEvents; the score write-back sets it False, so it does not loop.
    rescore = BooleanAttribute(null=True)
    score = NumberAttribute(null=True)
    suppressed = BooleanAttribute(null=True)
    explanation = UnicodeAttribute(null=True)
    incident_ids = ListAttribute[str](default=list)


class EntityItem(Model):
    class Meta(_Unbound):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    entity_id = UnicodeAttribute(null=True)
    first_seen = UnicodeAttribute(null=True)
    last_seen = UnicodeAttribute(null=True)


class ModelItem(Model):
    class Meta(_Unbound):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    counts = JSONAttribute(default=dict)  # context key -> count; bounded by the keys an entity shows
    recent = ListAttribute[str](default=list)
    history = JSONAttribute(default=list)  # compact recent events (needle.rules.history)
    total = NumberAttribute(default=0)
    entities = NumberAttribute(default=0)
    last_update = UnicodeAttribute(null=True)


class ByStatus(GlobalSecondaryIndex["IncidentItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by_status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    opened_at = UnicodeAttribute(range_key=True)


class IncidentItem(Model):
    class Meta(_Unbound):
        pass

    pk = UnicodeAttribute(hash_key=True)
    by_status = ByStatus()
    status = UnicodeAttribute()
    opened_at = UnicodeAttribute()
    body = JSONAttribute()


class StateItem(Model):
    class Meta(_Unbound):
        pass

    pk = UnicodeAttribute(hash_key=True)
    cursor = UnicodeAttribute(null=True)
    saved_at = UnicodeAttribute(null=True)
    holder = UnicodeAttribute(null=True)  # lock items: the run holding it
    expires_at = UnicodeAttribute(null=True)  # lock items: ISO time it lapses
