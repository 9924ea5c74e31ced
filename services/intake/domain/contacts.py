"""Contacts: normalised so the same person is recognised on every channel; hashed for keys."""

from __future__ import annotations

import hashlib
import re

import phonenumbers

from shared.privacy import contact_key

__all__ = ["anonymous_customer_id", "contact_key", "mask_id_number", "normalise_email", "normalise_phone"]

_DIGITS = re.compile(r"\d+")


def normalise_phone(raw: str | None, region: str = "CN") -> str | None:
    """E.164 (`+8613900001111`) where the number parses; else its digits; None when empty.

    `+86 139 0000 1111`, `0086-139-0000-1111` and `13900001111` all give `+8613900001111`.
    """
    if not raw:
        return None
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    digits = "".join(_DIGITS.findall(text))
    return digits or None


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def normalise_email(raw: str | None) -> str | None:
    if not raw:
        return None
    text = raw.strip().lower()
    return text if _EMAIL.match(text) else None


def anonymous_customer_id(kind: str, value: str) -> str:
    """A stable id for an unregistered contact, so repeat contacts are recognised."""
    return "anon-" + hashlib.sha256(f"customer:{kind}:{value}".encode()).hexdigest()[:16]


def mask_id_number(raw: str | None) -> str | None:
    """Keep only the last four characters of an identity document number."""
    if not raw:
        return None
    text = raw.strip()
    return "*" * max(0, len(text) - 4) + text[-4:]
