"""kefu's changes to nats-py: a fetch whose idle timeout is nats-py's own error (applied by
`tune_nats_client()` at start-up, never on import), and a leaner JetStream request path with plain
header parsing (`AckingJetStream`, `plain_header_parsing`), used by every service's JetStream calls.

The last two are load-bearing for speed: see shared/README.md for the `make bench` figure to watch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

import nats.aio.client
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, JetStreamManager
from nats.js.api import Header, PubAck, RawStreamMsg


def _timeouts_as_nats_timeouts(fetch: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """nats-py 2.16 can raise a bare asyncio.TimeoutError from PullSubscription.fetch (the path that
    avoids orphaned lingering pull requests) where it otherwise raises nats.errors.TimeoutError;
    FastStream 0.7's pull loop suppresses only the latter, so an idle consumer's loop crashed now and
    then and was restarted by FastStream's supervisor with an error log. Both mean "no message yet"."""

    async def fetch_converting_timeouts(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(*args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:
            raise nats.errors.TimeoutError from exc

    fetch_converting_timeouts.__wrapped__ = fetch  # type: ignore[attr-defined]
    return fetch_converting_timeouts


def tune_nats_client() -> None:
    """Apply kefu's one change to nats-py's classes (`_timeouts_as_nats_timeouts`): called by a
    service at start-up, before its consumers start — never on import. Idempotent."""
    if not hasattr(JetStreamContext.PullSubscription.fetch, "__wrapped__"):
        JetStreamContext.PullSubscription.fetch = _timeouts_as_nats_timeouts(  # type: ignore[method-assign,assignment]
            JetStreamContext.PullSubscription.fetch)


class _HeaderLines:
    """Stands in for `email.parser.BytesParser` where nats-py's JetStreamManager.get_msg parses a
    stored message's headers (every KV get): NATS headers are not e-mail headers, and nats-py's
    own client moved to this byte-level parser for messages it receives (nats-io/nats.py#928,
    non-ASCII values were lost) but not here; the e-mail parser is slow for what it does here."""

    @staticmethod
    def parsebytes(raw: bytes) -> dict[str, str]:
        return nats.aio.client.Client._parse_header_lines(raw)  # noqa: SLF001 - see the docstring


def plain_header_parsing(js: JetStreamContext) -> JetStreamContext:
    """Use `_HeaderLines` for the stored-message reads (KV gets) made through `js`."""
    if hasattr(js, "_hdr_parser") and hasattr(nats.aio.client.Client, "_parse_header_lines"):
        js._hdr_parser = _HeaderLines()  # type: ignore[assignment]  # noqa: SLF001 - see _HeaderLines
    return js


class AckingJetStream(JetStreamContext):
    """nats-py's JetStreamContext with a leaner request path under `publish` and the JetStream API
    calls: the same signatures, headers, errors and timeouts, with less work per message. Every
    JetStream write and read of a service goes through it: its own publishes, and KV puts, creates,
    updates, removals and gets, which nats-py's KeyValue makes with its context.

    nats-py makes each of them a `Client.request`: a new NUID and random token per message,
    `asyncio.wait_for` on the reply, and for a publish a PubAck built by introspecting the
    dataclass's fields. Here: one reply subscription on the service's own inbox, a counter for the
    token, a timer instead of wait_for (routing writes about 7 times per request)."""

    _PUBACK_FIELDS = frozenset(f.name for f in dataclasses.fields(PubAck))

    def __init__(self, conn: nats.aio.client.Client, **opts: Any) -> None:
        """Use `open`, which also subscribes to the replies."""
        super().__init__(conn, **opts)
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self._reply_prefix = conn.new_inbox() + "."  # under the service's inbox prefix (its NATS permissions)
        self._sent = 0

    @classmethod
    async def open(cls, conn: nats.aio.client.Client, **opts: Any) -> AckingJetStream:
        js = cls(conn, **opts)
        await conn.subscribe(js._reply_prefix + "*", cb=js._on_reply)
        return js

    async def _on_reply(self, msg: Msg) -> None:
        waiting = self._replies.get(msg.subject[len(self._reply_prefix):])
        if waiting is not None and not waiting.done():
            waiting.set_result(msg)

    async def _request(self, subject: str, payload: bytes, timeout: float,  # noqa: ASYNC109 - Client.request's
                       headers: dict[str, Any] | None = None) -> Msg:
        """`Client.request`'s contract: the reply, nats.errors.TimeoutError, NoRespondersError."""
        self._sent += 1
        token = str(self._sent)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Msg] = loop.create_future()
        self._replies[token] = answer
        try:
            await self._nc.publish(subject, payload, reply=self._reply_prefix + token, headers=headers)
            timer = loop.call_later(timeout, _time_out, answer)
            try:
                msg = await answer
            finally:
                timer.cancel()
        finally:
            del self._replies[token]
        if msg.headers and msg.headers.get(Header.STATUS) == "503":
            raise nats.errors.NoRespondersError
        return msg

    @staticmethod
    def _answer(msg: Msg) -> dict[str, Any]:
        """A JetStream reply's JSON, or its API error raised as nats-py raises it."""
        resp = json.loads(msg.data)
        if "error" in resp:
            raise nats.js.errors.APIError.from_error(resp["error"])
        return resp

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,  # noqa: ASYNC109 - nats-py's signature
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> PubAck:
        hdr = headers
        if stream is not None:
            hdr = hdr or {}
            hdr[Header.EXPECTED_STREAM] = stream
        if msg_ttl is not None:
            hdr = hdr or {}
            hdr[Header.MSG_TTL] = str(int(msg_ttl))
        try:
            msg = await self._request(subject, payload, self._timeout if timeout is None else timeout, hdr)
        except nats.errors.NoRespondersError:
            raise nats.js.errors.NoStreamResponseError from None
        return PubAck(**{k: v for k, v in self._answer(msg).items() if k in self._PUBACK_FIELDS})

    async def get_msg(
        self, stream_name: str, seq: int | None = None, subject: str | None = None, direct: bool | None = False,
        next: bool | None = False,  # noqa: A002 - nats-py's name
    ) -> RawStreamMsg:
        """A KV get (the last message of a key's subject) as a direct get through the reply mux;
        anything else as nats-py does it."""
        if not (direct and subject and seq is None and not next):
            return await super().get_msg(stream_name, seq, subject, direct, next)
        msg = await self._request(f"{self._prefix}.DIRECT.GET.{stream_name}.{subject}", b"", self._timeout)
        return JetStreamManager._lift_msg_to_raw_msg(msg)  # noqa: SLF001 - nats-py's own conversion

    async def _api_request(self, req_subject: str, req: bytes = b"", timeout: float = 5) -> dict[str, Any]:  # noqa: ASYNC109
        try:
            msg = await self._request(req_subject, req, timeout)
        except nats.errors.NoRespondersError:
            raise nats.js.errors.ServiceUnavailableError from None
        return self._answer(msg)


def _time_out(answer: asyncio.Future[Msg]) -> None:
    if not answer.done():
        answer.set_exception(nats.errors.TimeoutError())
