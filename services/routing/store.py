"""Routing's state in JetStream KV.

The request record (`kefu_requests`) is the source of truth and is only ever written with a
revision check. The other buckets are projections of it, kept in step by `Routing.sync`:
- `kefu_waiting`: requests queued for an agent (with what they need from one);
- `kefu_agents`: agents, and the requests each holds (the capacity guard, also revision-checked);
- `kefu_pending`: per customer, the requests waiting on them, so that the customer's reply resumes them;
- `kefu_outbox`: requests with a change whose events are not yet published.
Agents, waiting requests and the pending index are mirrored in memory by KV watchers for fast dispatch decisions;
every decision is then confirmed by a revision-checked write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import BaseModel, RootModel

from shared.contract import subjects as s
from shared.nats.kv import Conflict, ModelBucket, apply, remove

from .domain.dispatch import Agent, Waiting, WaitingIndex
from .domain.record import RequestRecord

log = logging.getLogger("kefu.routing.store")
T = TypeVar("T", bound=BaseModel)

# An outbox marker's removal is kept one second, not shared.nats.kv's minute: nothing watches the outbox
# (a marker only ever matters to the reconcile pass, which lists the bucket), and the listing walks
# every removal still kept — a minute of them at 250 changes/s is 15,000 messages per pass.
OUTBOX_MARKER_TTL = 1.0


class KvMirror(Generic[T]):
    """An in-memory copy of a bucket, kept current by a watcher (other replicas' writes included)."""

    def __init__(self, kv: KeyValue, model: type[T], keep: Callable[[T], bool] = lambda item: True,
                 index: Any = None) -> None:
        self.kv = kv
        self.model = model
        self.keep = keep  # entries that do not pass are held like deleted ones
        self.index = index  # kept in step: put(item) and remove(key) (e.g. WaitingIndex)
        self.items: dict[str, T] = {}
        self.loaded = asyncio.Event()
        self.changed: Callable[[], None] = lambda: None
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self) -> None:
        self._watcher = await self.kv.watchall()
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.loaded.wait(), 30)

    async def _run(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is None:
                self.loaded.set()
                continue
            if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                self._drop(entry.key)
            else:
                try:
                    item = self.model.model_validate_json(entry.value)
                except ValueError:
                    log.warning("undecodable entry", extra={"bucket": self.kv._name,  # noqa: SLF001 - nats-py has no public name
                                                                      "key": entry.key})
                    continue
                if self.keep(item):
                    self.items[entry.key] = item
                    if self.index is not None:
                        self.index.put(item)
                else:
                    self._drop(entry.key)
            if self.loaded.is_set():
                self.changed()

    def _drop(self, key: str) -> None:
        self.items.pop(key, None)
        if self.index is not None:
            self.index.remove(key)

    async def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class PendingRequests(RootModel[list[str]]):
    """A customer's requests waiting on them (a `kefu_pending` entry)."""


def customer_key(customer_id: str) -> str:
    return hashlib.sha256(customer_id.encode()).hexdigest()[:32]


class RoutingStore:
    def __init__(self, *, requests: KeyValue, agents: KeyValue, waiting: KeyValue, pending: KeyValue,
                 outbox: KeyValue) -> None:
        self.records = ModelBucket(requests, RequestRecord)
        self.agent_records = ModelBucket(agents, Agent)
        self.pending_records = ModelBucket(pending, PendingRequests)
        self.waiting_kv = waiting
        self.pending_kv = pending
        self.outbox_kv = outbox
        self.agents = KvMirror(agents, Agent)
        self.waiting_index = WaitingIndex()
        self.waiting = KvMirror(waiting, Waiting, index=self.waiting_index)
        # read for every received request (does this customer have requests waiting on them?):
        # from memory, not a round trip; holds only customers with something pending
        self.pending = KvMirror(pending, PendingRequests, keep=lambda p: bool(p.root))

    @classmethod
    async def open(cls, js: JetStreamContext) -> RoutingStore:
        store = cls(
            requests=await js.key_value(s.BUCKET_REQUESTS),
            agents=await js.key_value(s.BUCKET_AGENTS),
            waiting=await js.key_value(s.BUCKET_WAITING),
            pending=await js.key_value(s.BUCKET_PENDING),
            outbox=await js.key_value(s.BUCKET_OUTBOX),
        )
        await store.agents.start()
        await store.waiting.start()
        await store.pending.start()
        return store

    async def close(self) -> None:
        await self.agents.stop()
        await self.waiting.stop()
        await self.pending.stop()

    # -- requests ----------------------------------------------------------------------------
    async def get(self, request_id: str) -> tuple[RequestRecord, int] | None:
        return await self.records.get(request_id)

    async def create(self, record: RequestRecord) -> int | None:
        """Store a new record: its revision, or None if one exists already (another delivery or
        replica won)."""
        return await self.records.create(record.request_id, record)

    async def update(self, record: RequestRecord, revision: int) -> int:
        return await self.records.update(record.request_id, record, revision)

    # -- outbox markers ----------------------------------------------------------------------
    async def mark_outbox(self, request_id: str, version: int) -> None:
        """Written before a change is stored: the request may have unpublished events up to `version`."""
        await self.outbox_kv.put(request_id, str(version).encode())

    async def mark_outbox_if_absent(self, request_id: str) -> None:
        """Ask the reconcile loop to flush the request (version 0: whatever it holds), keeping a
        marker that is there already."""
        for _ in range(3):
            try:
                await self.outbox_kv.create(request_id, b"0")
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                return  # a marker is there
            except nats.js.errors.KeyNotFoundError:
                continue  # the key's removal marker expired between nats-py's two steps: try again

    async def unmark_outbox(self, request_id: str, flushed: int) -> None:
        """Remove the marker if it covers nothing newer than what was just flushed (a concurrent change
        that marked a newer version keeps its marker)."""
        try:
            entry = await self.outbox_kv.get(request_id)
        except nats.js.errors.KeyNotFoundError:
            return
        if entry.value and int(entry.value.decode() or 0) <= flushed:
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await remove(self.outbox_kv, request_id, last=entry.revision, marker_ttl=OUTBOX_MARKER_TTL)

    async def outbox_ids(self) -> list[str]:
        """Requests with a marker: for the reconcile pass only (lists the bucket)."""
        try:
            return await self.outbox_kv.keys()
        except nats.js.errors.NoKeysError:
            return []

    # -- waiting ----------------------------------------------------------------------------
    async def enqueue(self, waiting: Waiting) -> None:
        await self.waiting_kv.put(waiting.request_id, waiting.model_dump_json().encode())

    async def dequeue(self, request_id: str) -> None:
        if request_id in self.waiting.items:
            await remove(self.waiting_kv, request_id)

    # -- pending on the customer -------------------------------------------------------------
    async def set_pending(self, customer_id: str, request_id: str, pending: bool) -> None:
        """Keep the customer's list of requests waiting on them (revision-checked)."""
        def toggle(entry: PendingRequests | None) -> PendingRequests | None:
            have = set(entry.root) if entry is not None else set()
            wanted = have | {request_id} if pending else have - {request_id}
            return None if wanted == have else PendingRequests(sorted(wanted))

        await apply(self.pending_records, customer_key(customer_id), toggle)

    def pending_for(self, customer_id: str) -> list[str]:
        if not self.pending.items:  # nobody is waiting on a reply: no key to hash (most of the time)
            return []
        found = self.pending.items.get(customer_key(customer_id))
        return list(found.root) if found is not None else []

    # -- agents -------------------------------------------------------------------------------
    async def get_agent(self, agent_id: str) -> tuple[Agent, int] | None:
        return await self.agent_records.get(agent_id)

    async def put_agent(self, agent: Agent, revision: int | None) -> None:
        if revision is None:
            if not await self.agent_records.create(agent.agent_id, agent):
                raise Conflict(agent.agent_id)
        else:
            await self.agent_records.update(agent.agent_id, agent, revision)

    async def change_agent(self, agent_id: str, change: Callable[[Agent], Agent | None]) -> Agent | None:
        """Apply `change` with a revision check, retrying on conflicts (None: no change). Returns the
        agent as stored (None: no such agent)."""
        return await self.agent_records.change(agent_id, change)

    async def remove_agent(self, agent_id: str, revision: int) -> None:
        """Delete an agent, only if unchanged since `revision` (else Conflict)."""
        try:
            await self.agent_records.kv.delete(agent_id, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise Conflict(agent_id) from None

    async def hold(self, agent_id: str, request_id: str, queue: str, *, ignore_capacity: bool = False) -> Literal[
            "added", "present", "full"]:
        """Add the request to the agent's active list if they have room: the capacity guard.

        "present" means someone else's hold is there already (another replica's offer in flight):
        the caller must neither offer nor roll back."""
        outcome: list[str] = []

        def add(agent: Agent) -> Agent | None:
            outcome[:] = []
            if request_id in agent.active:
                outcome.append("present")
                if agent.held_in.get(request_id, queue) != queue:  # a held request moved queue (a new priority)
                    return agent.model_copy(update={"held_in": agent.held_in | {request_id: queue}})
                return agent
            if not ignore_capacity and not agent.has_room:
                outcome.append("full")
                return None
            outcome.append("added")
            return agent.model_copy(update={"active": [*agent.active, request_id],
                                            "held_in": agent.held_in | {request_id: queue}})

        await self.change_agent(agent_id, add)
        return outcome[-1] if outcome else "full"  # type: ignore[return-value]

    async def release(self, agent_id: str, request_id: str) -> None:
        def drop(agent: Agent) -> Agent:
            return agent.model_copy(update={"active": [r for r in agent.active if r != request_id],
                                            "held_in": {r: q for r, q in agent.held_in.items() if r != request_id}})

        await self.change_agent(agent_id, drop)
