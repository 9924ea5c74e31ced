"""kefu's JetStream context (`shared.nats.client.AckingJetStream`) answers every publish and API request as
nats-py's does: the ack, duplicates, the stream's refusals, no stream, timeouts, and the KV writes
and reads built on it."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import KeyValueConfig, StreamConfig

from shared.nats.client import AckingJetStream
from shared.nats.kv import remove

pytestmark = pytest.mark.integration


@pytest.fixture
async def lean(nats_server):
    nc = await nats.connect(nats_server.url, inbox_prefix=b"_INBOX_test")
    js = await AckingJetStream.open(nc)
    await js.add_stream(StreamConfig(name="ACK_TEST", subjects=["ack.>"], duplicate_window=60))
    yield js
    await nc.close()


async def test_publish_is_stored_once_per_msg_id_with_its_ack(lean) -> None:
    first = await lean.publish("ack.a", b"1", headers={"Nats-Msg-Id": "m1"})
    again = await lean.publish("ack.a", b"1", headers={"Nats-Msg-Id": "m1"})
    other = await lean.publish("ack.a", b"2", stream="ACK_TEST", headers={"Nats-Msg-Id": "m2"})
    assert (first.stream, first.seq, first.duplicate) == ("ACK_TEST", 1, None)
    assert (again.seq, again.duplicate) == (1, True)
    assert other.seq == 2
    assert (await lean.stream_info("ACK_TEST")).state.messages == 2


async def test_many_publishes_in_flight_each_get_their_own_ack(lean) -> None:
    acks = await asyncio.gather(*(lean.publish("ack.b", str(i).encode(), headers={"Nats-Msg-Id": f"b{i}"})
                                  for i in range(200)))
    assert sorted(a.seq for a in acks) == list(range(1, 201))
    for i, ack in enumerate(acks):  # each ack belongs to its own message
        assert (await lean.get_msg("ACK_TEST", seq=ack.seq)).data == str(i).encode()


async def test_refusals_raise_what_nats_py_raises(lean) -> None:
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await lean.publish("nostream.x", b"")
    with pytest.raises(nats.js.errors.BadRequestError, match="expected stream does not match"):
        await lean.publish("ack.c", b"", stream="ANOTHER")
    # a subscriber that never answers: no ack within the timeout
    await lean._nc.subscribe("silent.x")  # noqa: SLF001
    with pytest.raises(nats.errors.TimeoutError):
        await lean.publish("silent.x", b"", timeout=0.2)
    assert not lean._replies  # noqa: SLF001 - nothing left waiting


@pytest.mark.parametrize("direct", [True, False], ids=["direct-gets", "api-gets"])
async def test_kv_writes_and_reads_through_it_keep_their_revision_checks(lean, direct: bool) -> None:
    kv = await lean.create_key_value(KeyValueConfig(bucket="ack_kv", history=1, direct=direct))
    assert kv._direct is direct  # noqa: SLF001
    assert kv._js is lean  # noqa: SLF001 - the bucket writes through kefu's context
    revision = await kv.create("k", b"v1")
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await kv.create("k", b"again")
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await kv.update("k", b"v2", last=revision + 5)
    assert await kv.update("k", b"v2", last=revision) > revision
    entry = await kv.get("k")  # KV reads are requests through it too
    assert (entry.value, entry.revision) == (b"v2", revision + 1)
    await remove(kv, "k")
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("k")


async def test_api_requests_answer_and_refuse_as_nats_py_does(lean) -> None:
    info = await lean.stream_info("ACK_TEST")
    assert info.config.name == "ACK_TEST"
    with pytest.raises(nats.js.errors.NotFoundError):
        await lean.stream_info("NO_SUCH_STREAM")
    assert not lean._replies  # noqa: SLF001
