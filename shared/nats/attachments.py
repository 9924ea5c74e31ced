"""Large mail's attachments kept in the JetStream object store `kefu_attachments` (shared.mailparts
moves them out), so the mail itself fits a NATS message. An attachment already there (the same
bytes: its name is their SHA-256) is not written again."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import ObjectNotFoundError

from ..mailparts import BUCKET, detach


async def fit(js: JetStreamContext, raw: bytes, *, limit: int) -> bytes:
    """`raw` when it is at most `limit` bytes; else the mail with its large attachments stored and
    referenced (which may still be larger than `limit`: the caller refuses it then)."""
    if len(raw) <= limit:
        return raw
    small, moved = detach(raw)
    if moved:
        store = await js.object_store(BUCKET)
        for part in moved:
            try:
                await store.get_info(part.key)
            except ObjectNotFoundError:
                await store.put(part.key, part.data)
    return small
