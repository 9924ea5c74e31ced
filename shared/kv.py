"""A JetStream KV bucket of one pydantic model, with revision-checked writes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Generic, TypeVar

import nats.js.errors
from nats.js.kv import KeyValue
from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


class Conflict(Exception):
    """Another writer changed the key first."""


class ModelBucket(Generic[T]):
    def __init__(self, kv: KeyValue, model: type[T]) -> None:
        self.kv = kv
        self.model = model

    async def get(self, key: str) -> tuple[T, int] | None:
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        return self.model.model_validate_json(entry.value or b""), entry.revision or 0

    async def create(self, key: str, value: T) -> int | None:
        """The new revision (truthy), or None when the key exists already."""
        try:
            return await self.kv.create(key, value.model_dump_json().encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def update(self, key: str, value: T, revision: int) -> int:
        """Write if the key is still at `revision`; returns the new revision."""
        try:
            return await self.kv.update(key, value.model_dump_json().encode(), last=revision)
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise Conflict(key) from exc

    async def change(self, key: str, change: Callable[[T], T | None], attempts: int = 20) -> T | None:
        """Read, change, write with a revision check, retrying on conflicts. `change` returning
        None (or the value unchanged) writes nothing. Returns the value as stored, None if absent."""
        for _ in range(attempts):
            found = await self.get(key)
            if found is None:
                return None
            value, revision = found
            changed = change(value)
            if changed is None or changed == value:
                return value
            try:
                await self.update(key, changed, revision)
                return changed
            except Conflict:
                continue
        raise Conflict(key)

    async def keys(self) -> list[str]:
        """Every key, including deleted ones (their `get` is None): for buckets without deletes on
        a hot path (a listing of a bucket with many delete markers would return all of them)."""
        return await list_keys(self.kv)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await self.kv.delete(key)


async def list_keys(kv: KeyValue) -> list[str]:
    """Every key of a bucket with a value or a delete marker (a `get` of the latter finds nothing).

    Read from the stream's per-subject state, page by page, instead of nats-py's `KeyValue.keys()`:
    its watcher can signal "no more keys" before the buffered ones are processed and then reports
    an empty bucket (nats-io/nats.py#842; seen here as a flaky monthly-sample test)."""
    js = kv._js  # noqa: SLF001 - the JetStream context and stream the bucket object already holds
    prefix = kv._pre  # noqa: SLF001 - "$KV.<bucket>."
    keys: list[str] = []
    offset = 0
    while True:
        resp = await js._api_request(  # noqa: SLF001 - stream info with paging (nats-py has no offset)
            f"{js._prefix}.STREAM.INFO.{kv._stream}",  # noqa: SLF001
            json.dumps({"subjects_filter": f"{prefix}>", "offset": offset}).encode(),
            timeout=10,
        )
        subjects = (resp.get("state") or {}).get("subjects") or {}
        keys += [subject[len(prefix):] for subject in subjects]
        total = resp.get("total") or 0
        offset += len(subjects)
        if not subjects or offset >= total:
            return keys


MARKER_TTL = 60.0  # seconds a removal marker of a transient key is kept (then the key leaves no trace)


async def remove(kv: KeyValue, key: str, *, last: int | None = None, marker_ttl: float = MARKER_TTL) -> None:
    """Remove a transient key (a queue entry, an outbox marker) without leaving a marker behind
    for ever: a KV delete keeps one message per key ever used, so the bucket's stream, nats-server's
    per-subject memory and every listing of the bucket (routing's reconcile pass) grew with every
    request (found by `make soak`). A purge marker with a per-message TTL (nats-server 2.11+, the
    stream allowing message TTLs) is seen by watchers like any removal and then expires.
    `last`: remove only if the key is still at that revision (else KeyWrongLastSequenceError)."""
    headers = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
    if last:
        headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
    try:
        await kv._js.publish(f"{kv._pre}{key}", b"", headers=headers, msg_ttl=marker_ttl)  # noqa: SLF001
    except nats.js.errors.APIError as err:
        if err.err_code in (10071, 10164):  # wrong last sequence, as nats-py's own KV update maps it
            raise nats.js.errors.KeyWrongLastSequenceError(description=err.description) from err
        raise

