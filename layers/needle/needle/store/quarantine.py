"""Quarantine for records that could not be normalized: kept whole in S3, with the reason."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_RAW_BYTES = 256 * 1024
# Another writer got there first (412) or is writing the same key now (409): either way the
# record is already quarantined.
ALREADY_THERE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class S3Quarantine:
    def __init__(self, s3: S3Client, bucket: str, now: Any = None) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._now = now or (lambda: datetime.now(UTC))

    def put(self, source: str, reason: str, raw: Any) -> bool:
        """Store the record under quarantine/<source>/<date>/<sha256>.json; True if it is new.

        The key is the payload's hash and the write is conditional (If-None-Match), so a record
        read again through the poll overlap is kept once and counted once.
        """
        payload = json.dumps(raw, sort_keys=True, default=str)[:MAX_RAW_BYTES]
        digest = hashlib.sha256(payload.encode()).hexdigest()
        key = f"quarantine/{source}/{self._now():%Y/%m/%d}/{digest}.json"
        body = json.dumps({"source": source, "reason": reason[:500], "raw": payload})
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body.encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ALREADY_THERE:
                return False
            raise
        return True
