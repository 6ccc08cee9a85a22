"""State table: poll checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DoesNotExist

from needle.model.event import parse_time
from needle.store.items import StateItem


class DynamoCheckpoints:
    def load(self, source: str) -> datetime | None:
        try:
            item = StateItem.get(f"checkpoint#{source}")
        except DoesNotExist:
            return None
        return parse_time(item.cursor) if item.cursor else None

    def save(self, source: str, cursor: datetime) -> None:
        # Full microseconds: a cursor rounded down would re-read, rounded up would skip.
        StateItem(
            f"checkpoint#{source}",
            cursor=cursor.astimezone(UTC).isoformat(),
            saved_at=datetime.now(UTC).isoformat(),
        ).save()
