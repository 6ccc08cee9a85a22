"""State table: poll checkpoints and the per-source poll lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError

from needle.model.event import iso, parse_time
from needle.store.conditions import condition_failed
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


class PollLock:
    """One poll per source at a time: EventBridge starts a poll every minute, and a slow run
    (a long backfill, a throttled API) must not overlap the next one, which would interleave
    checkpoints and race to create the same alerts.

    The lock is an item `lock#<source>` with the holder and an expiry: a run that dies holding
    it blocks its source only until the expiry (the Lambda timeout).
    """

    def __init__(self, clock: Any = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    def hold(self, source: str, holder: str, seconds: float) -> bool:
        """Take the lock for `seconds`; False when another live holder has it."""
        now = self._clock()
        item = StateItem(f"lock#{source}", holder=holder, expires_at=iso(now + timedelta(seconds=seconds)))
        try:
            item.save(
                condition=StateItem.pk.does_not_exist()
                | (StateItem.expires_at < iso(now))
                | (StateItem.holder == holder)
            )
        except PutError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def release(self, source: str, holder: str) -> None:
        try:
            StateItem(f"lock#{source}").delete(condition=StateItem.holder == holder)
        except DeleteError as exc:
            # Expired and taken by the next run meanwhile: that run's lock is not ours to drop.
            if not condition_failed(exc):
                raise
