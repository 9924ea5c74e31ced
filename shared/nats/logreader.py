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
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.aio.client
import nats.errors
from nats.aio.msg import Msg

END = ("204", "404", "408")  # end of batch, nothing at or after that sequence, request timed out


@dataclass(frozen=True)
class LogEntry:
    seq: int
    subject: str
    data: bytes


class LogReader:
    def __init__(self, nc: nats.aio.client.Client, stream: str, *, timeout: float = 5.0) -> None:
        self._nc, self._subject, self._timeout = nc, f"$JS.API.DIRECT.GET.{stream}", timeout

    async def batch(self, *, seq: int | None = None, start_time: datetime | None = None,
                    size: int = 500) -> list[LogEntry]:
        """Up to `size` messages from `seq` (or from `start_time`) on, in order; [] past the end."""
        request: dict[str, object] = {"batch": size}
        if start_time is not None:
            request["start_time"] = start_time.astimezone(UTC).isoformat().replace("+00:00", "Z")
        else:
            request["seq"] = max(seq or 1, 1)
        entries: list[LogEntry] = []
        done = asyncio.get_running_loop().create_future()

        async def on_message(msg: Msg) -> None:
            headers = msg.headers or {}
            status = headers.get("Status")
            if status is not None:
                if status in END and not done.done():
                    done.set_result(None)
                return
            entries.append(LogEntry(int(headers["Nats-Sequence"]), headers["Nats-Subject"], msg.data))
            if len(entries) >= size and not done.done():
                done.set_result(None)

        inbox = self._nc.new_inbox()  # under the service's own inbox prefix (its NATS permissions)
        sub = await self._nc.subscribe(inbox, cb=on_message)
        try:
            await self._nc.publish(self._subject, json.dumps(request).encode(), reply=inbox)
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
                # that arrives as the batch completes, and the reading task then never stops
                async with asyncio.timeout(self._timeout):
                    await done
            except TimeoutError:
                raise nats.errors.TimeoutError from None
        finally:
            await sub.unsubscribe()
        return entries
