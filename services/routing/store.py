"""Routing's state in JetStream KV: one record per request, updated with revision checks."""

from __future__ import annotations

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from shared import subjects as s

from .domain.record import RequestRecord


class RequestStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> RequestStore:
        return cls(await js.key_value(s.BUCKET_REQUESTS))

    async def get(self, request_id: str) -> tuple[RequestRecord, int] | None:
        try:
            entry = await self.kv.get(request_id)
        except nats.js.errors.KeyNotFoundError:
            return None
        return RequestRecord.model_validate_json(entry.value), entry.revision

    async def create(self, record: RequestRecord) -> RequestRecord:
        """Store a new record; if another delivery or replica stored one first, that one wins."""
        try:
            await self.kv.create(record.request.request_id, record.model_dump_json().encode())
            return record
        except nats.js.errors.KeyWrongLastSequenceError:
            existing = await self.get(record.request.request_id)
            assert existing is not None
            return existing[0]
