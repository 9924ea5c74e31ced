"""Large mail detached for NATS (shared/mailparts.py), read back by Python's email package."""

from __future__ import annotations

import email
import hashlib
from email import policy
from email.message import EmailMessage

from shared.mailparts import HEADER, detach, reference


def big_mail(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "a@example.net", "kf@example.cn", "附件", "<big@x>"
    msg.set_content("见附件，谢谢。")
    msg.add_attachment(bytes(range(256)) * (size // 256), maintype="image", subtype="png", filename="屏幕截图.png")
    msg.add_attachment(b"small", maintype="application", subtype="octet-stream", filename="note.bin")
    return msg.as_bytes()


def test_a_large_attachment_moves_out_and_the_rest_stays_as_it_was() -> None:
    raw = big_mail(1_000_000)
    small, moved = detach(raw)
    assert len(raw) > 1_300_000 and len(small) < 10_000
    assert [(m.name, m.content_type, len(m.data)) for m in moved] == [("屏幕截图.png", "image/png", 999_936)]
    assert moved[0].key == hashlib.sha256(moved[0].data).hexdigest()
    msg = email.message_from_bytes(small, policy=policy.default)
    assert msg["Subject"] == "附件" and msg["Message-ID"] == "<big@x>"
    assert msg.get_body(("plain",)).get_content().strip() == "见附件，谢谢。"
    parts = [p for p in msg.walk() if not p.is_multipart()]
    assert [reference(p) for p in parts] == [None, (moved[0].key, 999_936), None]
    assert parts[2].get_payload(decode=True) == b"small"


def test_nothing_to_move_leaves_the_bytes_untouched() -> None:
    raw = big_mail(10_000)
    assert detach(raw) == (raw, [])


def test_a_forged_marker_is_no_reference() -> None:
    msg = EmailMessage()
    msg[HEADER] = "not-a-hash; size=12"
    assert reference(msg) is None
