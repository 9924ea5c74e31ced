"""A JetStream KV bucket of one pydantic model, with revision-checked writes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import nats.js.errors
from nats.js.kv import KeyValue
from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)
ATTEMPTS = 20  # writers of one key at once are a handful (replicas, an API call): 20 conflicts in a row is a fault


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

    async def change(self, key: str, change: Callable[[T], T | None], attempts: int = ATTEMPTS) -> T | None:
        """`apply` to an existing key only: `change` returning None (or the value unchanged) writes
        nothing. Returns the value as stored, None if absent."""
        def changed(value: T | None) -> T | None:
            if value is None:
                return None
            new = change(value)
            return None if new == value else new

        return (await apply(self, key, changed, attempts=attempts)).value

    async def keys(self) -> list[str]:
        """Every key, including deleted ones (their `get` is None): for buckets without deletes on
        a hot path (a listing of a bucket with many delete markers would return all of them)."""
        return await list_keys(self.kv)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await self.kv.delete(key)


@dataclass(frozen=True)
class Applied(Generic[T]):
    """The outcome of `apply`: the value as stored (None: absent), its revision (0: absent), and
    whether this call wrote it."""

    value: T | None
    revision: int
    written: bool


async def apply(bucket: ModelBucket[T], key: str, transition: Callable[[T | None], T | None], *,
                known: tuple[T | None, int] | None = None, before_write: Callable[[T], Awaitable[None]] | None = None,
                attempts: int = ATTEMPTS) -> Applied[T]:
    """The one way kefu changes state: read the key, apply the pure `transition` to its value (None
    when absent), write the result with the revision read (a create when absent), and on a conflict
    start again from a fresh read. `transition` returning None or its input itself writes nothing
    (no equality test here: a deep comparison of a large record costs CPU on every write).
    It may run several times and must not mutate its input (tests/unit: hypothesis).

    `known`: the value and revision the caller has just written or read (the first try skips the
    read); `(None, 0)` for a key just read as absent. `before_write`: awaited before each write (routing marks its outbox there).

    Events are not published here: a change's events are derived from the stored value by the caller
    (or stored with it, routing's outbox) and published with ids derived from the change, so a
    redelivery that finds the change already made publishes them again and the stream's duplicate
    window keeps one copy."""
    found = known
    for attempt in range(attempts):
        if found is None or attempt:
            found = await bucket.get(key)
        value, revision = found if found is not None else (None, 0)
        changed = transition(value)
        if changed is None or changed is value:
            return Applied(value, revision, written=False)
        if before_write is not None:
            await before_write(changed)
        if value is None:
            created = await bucket.create(key, changed)
            if created is None:
                continue  # another writer created it first
            return Applied(changed, created, written=True)
        try:
            return Applied(changed, await bucket.update(key, changed, revision), written=True)
        except Conflict:
            continue
    raise Conflict(key)


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

