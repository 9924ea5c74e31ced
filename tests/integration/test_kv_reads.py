"""Stored-message reads (every KV get) with the byte-level header parser kefu installs."""

from __future__ import annotations

import nats.js.errors
import pytest
from nats.js.api import KeyValueConfig, StreamConfig

from shared.nats.client import plain_header_parsing

pytestmark = pytest.mark.integration


async def test_kv_reads_see_values_revisions_and_delete_markers(js) -> None:
    js = plain_header_parsing(js)
    kv = await js.create_key_value(KeyValueConfig(bucket="hdr_test", history=2))
    revision = await kv.put("k", b"v1")
    entry = await kv.get("k")
    assert (entry.value, entry.revision) == (b"v1", revision)
    await kv.delete("k")  # a delete marker is a message with a KV-Operation header
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("k")


async def test_stored_headers_with_non_ascii_values_are_read_as_text(js) -> None:
    js = plain_header_parsing(js)
    await js.add_stream(StreamConfig(name="HDR_TEST", subjects=["hdr.test"]))
    ack = await js.publish("hdr.test", b"x", headers={"Kefu-Detail": "投诉 ø", "Nats-Msg-Id": "m1"})
    msg = await js.get_msg("HDR_TEST", seq=ack.seq)
    assert msg.headers["Kefu-Detail"] == "投诉 ø"
    assert msg.headers["Nats-Msg-Id"] == "m1"
