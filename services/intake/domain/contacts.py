"""Contacts: normalised so the same person is recognised on every channel; hashed for keys."""

from __future__ import annotations

import hashlib
import re

from shared.contacts import normalise_email, normalise_phone
from shared.privacy import contact_key

__all__ = ["anonymous_customer_id", "contact_key", "is_id_number", "mask_id_number", "mask_id_numbers",
           "normalise_email", "normalise_phone"]

def anonymous_customer_id(kind: str, value: str) -> str:
    """A stable id for an unregistered contact, so repeat contacts are recognised."""
    return "anon-" + hashlib.sha256(f"customer:{kind}:{value}".encode()).hexdigest()[:16]


# a resident identity number (GB 11643-1999): 6-digit region, 8-digit birth date, 3-digit sequence,
# and a check character (ISO 7064 MOD 11-2), standing alone (not inside a longer number or word)
_ID_NUMBER = re.compile(rb"(?<![0-9A-Za-z])([1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
                        rb"[0-9]{3}[0-9Xx])(?![0-9A-Za-z])")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def is_id_number(text: bytes) -> bool:
    """An 18-character identity number whose check character is right (most 18-digit order or
    account numbers are not: 1 in 11 passes by chance, which masking then costs a few digits of)."""
    if len(text) != 18:
        return False
    total = sum(int(chr(c)) * w for c, w in zip(text[:17], _WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == chr(text[17]).upper()


# a JSON field that holds an identity document number, whatever its content (the walk-in
# format's customer.id_number; passports and other documents have no check character)
_ID_FIELD = re.compile(rb'("(?:id_number|idNumber|id_no|id_card|idCard)"\s*:\s*")([^"\\]{5,64})(")')


def _mask_field(m: re.Match[bytes]) -> bytes:
    value = m.group(2)
    return m.group(1) + b"*" * (len(value) - 4) + value[-4:] + m.group(3)


def mask_id_numbers(raw: bytes) -> bytes:
    """Raw bytes with identity numbers masked but their last four characters, byte for byte (the
    payload keeps its length and structure: JSON stays JSON): any identity-number field of a JSON
    payload, and every resident identity number with a valid check character anywhere in the text.
    Plain text only: a number inside base64 or quoted-printable parts of a mail is not seen
    (docs/channels.md)."""
    if len(raw) < 18:
        return raw
    raw = _ID_FIELD.sub(_mask_field, raw)
    return _ID_NUMBER.sub(lambda m: b"*" * 14 + m.group(1)[14:] if is_id_number(m.group(1)) else m.group(1), raw)


def mask_id_number(raw: str | None) -> str | None:
    """Keep only the last four characters of an identity document number."""
    if not raw:
        return None
    text = raw.strip()
    return "*" * max(0, len(text) - 4) + text[-4:]
