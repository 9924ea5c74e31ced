"""The WeChat official-account server protocol, pure: signatures, the replay window, safe-mode
envelopes (AES-256-CBC with the EncodingAESKey, PKCS#7 over 32-byte blocks, the AppID check), and
what identifies a push for deduplication. Tested against wechatpy's own implementation
(tests/unit/gateway/test_wechat_protocol.py), never against this module's picture of it.

WeChat's documentation: "接入指南" (server URL verification with `echostr`) and "消息加解密说明"
(the encrypted envelope: base64(AES-CBC(random16 + len(msg) as 4 bytes big-endian + msg + AppID)),
key = base64(EncodingAESKey + "="), IV = the key's first 16 bytes)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from xml.etree.ElementTree import Element

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml.ElementTree import fromstring
from pydantic import BaseModel

BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16
MAX_BODY = 256 * 1024


class Refused(Exception):
    """A push that is not WeChat's, or not readable: the reason, for the log and the answer."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def signature(*parts: str) -> str:
    """SHA1 of the parts sorted and joined: `signature` (token, timestamp, nonce) and
    `msg_signature` (the same and the encrypted message)."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signature(expected: str | None, *parts: str) -> None:
    if not expected or not hmac.compare_digest(signature(*parts), expected.lower()):
        raise Refused(403, "bad_signature", "the signature does not match the configured token")


def check_fresh(timestamp: str, *, now: float, window: float) -> None:
    """A push is taken within `window` seconds of its timestamp either way: a captured request
    replayed later is refused (WeChat retries within 15 s)."""
    try:
        sent = int(timestamp)
    except ValueError:
        raise Refused(400, "invalid_request", "timestamp is not a number") from None
    if abs(now - sent) > window:
        raise Refused(403, "stale_request", f"timestamp is {int(now - sent)} s from now (window {int(window)} s)")


class Crypto(BaseModel):
    """Safe mode's key and the official account's AppID."""

    encoding_aes_key: str
    app_id: str

    @property
    def key(self) -> bytes:
        key = base64.b64decode(self.encoding_aes_key + "=")
        if len(key) != 32:
            raise ValueError("EncodingAESKey must be 43 characters (32 bytes in base64)")
        return key

    def decrypt(self, encrypted: str) -> bytes:
        """The plaintext XML of an `<Encrypt>` value, or Refused."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except ValueError:
            raise Refused(400, "invalid_request", "Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise Refused(400, "invalid_request", "Encrypt is not whole AES blocks")
        key = self.key
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        pad = padded[-1]
        if not 1 <= pad <= BLOCK or padded[-pad:] != bytes([pad]) * pad:
            raise Refused(400, "invalid_request", "Encrypt does not decrypt with the configured EncodingAESKey")
        content = padded[16:-pad]
        if len(content) < 4:
            raise Refused(400, "invalid_request", "Encrypt is too short")
        length = struct.unpack(">I", content[:4])[0]
        message, app_id = content[4:4 + length], content[4 + length:]
        if len(message) != length:
            raise Refused(400, "invalid_request", "Encrypt's length prefix does not fit")
        if not hmac.compare_digest(app_id, self.app_id.encode()):
            raise Refused(403, "wrong_app", "the message is for another official account (AppID)")
        return message


def xml_root(body: bytes) -> Element:
    if len(body) > MAX_BODY:
        raise Refused(413, "too_large", f"at most {MAX_BODY} bytes")
    try:
        root: Element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as exc:  # noqa: BLE001 - defusedxml's refusals and ParseError alike
        raise Refused(400, "invalid_request", f"not well-formed XML ({type(exc).__name__})") from None
    return root


def field(root: Element, tag: str) -> str | None:
    node = root.find(tag)
    return node.text.strip() if node is not None and node.text and node.text.strip() else None


def dedup_key(plain: bytes) -> str:
    """What makes a push the same push: its MsgId; an event's FromUserName and CreateTime (events
    have no MsgId). WeChat's retries of one push carry the same."""
    root = xml_root(plain)
    msg_id = field(root, "MsgId")
    if msg_id:
        return f"msg.{msg_id}"
    sender, created = field(root, "FromUserName"), field(root, "CreateTime")
    if not sender or not created:
        raise Refused(400, "invalid_request", "a push with neither MsgId nor FromUserName and CreateTime")
    return f"event.{hashlib.sha256(f'{sender}|{created}'.encode()).hexdigest()[:32]}"
