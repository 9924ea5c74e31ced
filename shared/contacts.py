"""Contacts normalised the one way every service reads them: what intake recognises a customer by,
and what routing's lookup finds their requests by."""

from __future__ import annotations

import re

import phonenumbers

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


# a local part as written, or quoted (RFC 5322: `"Big Bug bb"@bug.com` is one mailbox)
_EMAIL = re.compile(r'^(?:"[^"\r\n\\]{1,64}"|[^@\s<>"]+)@[^@\s<>"]+\.[^@\s<>"]+$')


def normalise_email(raw: str | None) -> str | None:
    if not raw:
        return None
    text = raw.strip().lower()
    return text if _EMAIL.match(text) else None
