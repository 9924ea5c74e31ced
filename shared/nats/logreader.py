"""Reading a stream by sequence with batched direct gets (nats-server >= 2.11, `allow_direct`):
no consumer, so a reader needs only the read-only `$JS.API.DIRECT.GET.<stream>` right and can
neither create, change nor delete anyone's consumer. metrics replays and follows the event log
this way (docs/security.md#nats-users); any replica of the stream answers.

One request asks for up to `size` messages from a sequence (or a time) on; they come to the
reader's own inbox, then an end-of-batch status (204), or 404 when there is nothing there yet.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import nats.aio.client
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

END = ("204", "404", "408")  # end of batch, nothing at or after that sequence, request timed out


@dataclass(frozen=True)
class LogEntry:
    seq: int
    subject: str
    data: bytes


class LogReader:
    """Batches come to one subscription, made at the first batch and kept: a subscription per batch
    costs the server a subscription change (and its subject-match cache) for every batch, which
    while following a busy log is several per second."""

    def __init__(self, nc: nats.aio.client.Client, stream: str, *, timeout: float = 5.0) -> None:
        self._nc, self._subject, self._timeout = nc, f"$JS.API.DIRECT.GET.{stream}", timeout
        self._prefix = ""
        self._sub: Subscription | None = None
        self._sent = 0
        self._batches: dict[str, _Batch] = {}

    async def _open(self) -> None:
        if self._sub is None:
            # under the service's own inbox prefix (its NATS permissions)
            self._prefix = self._nc.new_inbox() + "."
            self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        batch = self._batches.get(msg.subject[len(self._prefix):])
        if batch is not None:  # else: the rest of a batch that timed out
            batch.add(msg)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def batch(self, *, seq: int | None = None, start_time: datetime | None = None,
                    size: int = 500) -> list[LogEntry]:
        """Up to `size` messages from `seq` (or from `start_time`) on, in order; [] past the end."""
        request: dict[str, object] = {"batch": size}
        if start_time is not None:
            request["start_time"] = start_time.astimezone(UTC).isoformat().replace("+00:00", "Z")
        else:
            request["seq"] = max(seq or 1, 1)
        await self._open()
        self._sent += 1
        token = str(self._sent)
        batch = self._batches[token] = _Batch(size, asyncio.get_running_loop().create_future())
        try:
            await self._nc.publish(self._subject, json.dumps(request).encode(), reply=self._prefix + token)
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
                # that arrives as the batch completes, and the reading task then never stops
                async with asyncio.timeout(self._timeout):
                    await batch.done
            except TimeoutError:
                raise nats.errors.TimeoutError from None
        finally:
            del self._batches[token]
        return batch.entries


@dataclass
class _Batch:
    size: int
    done: asyncio.Future[None]
    entries: list[LogEntry] = field(default_factory=list)

    def add(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is not None:
            if status in END and not self.done.done():
                self.done.set_result(None)
            return
        self.entries.append(LogEntry(int(headers["Nats-Sequence"]), headers["Nats-Subject"], msg.data))
        if len(self.entries) >= self.size and not self.done.done():
            self.done.set_result(None)
