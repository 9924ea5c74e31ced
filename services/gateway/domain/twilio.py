"""Twilio's webhook signature (`X-Twilio-Signature`), pure: base64 of HMAC-SHA1, keyed with the
account's auth token, over the full URL Twilio posted to followed by each POST parameter's name
and value, sorted by name. Tested against the `twilio` package's RequestValidator
(tests/unit/gateway/test_sms_protocol.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Each distinct (name, value) once, by name then value, as Twilio's own validator builds it."""
    data = url + "".join(f"{name}{value}" for name, value in sorted(set(params)))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def valid(auth_token: str, url: str, params: Iterable[tuple[str, str]], given: str | None) -> bool:
    """Whether `given` is Twilio's signature of this request. Twilio signs the URL as configured
    on its side; one with and one without the default port are both accepted, as its own
    validator does."""
    if not given:
        return False
    params = list(params)
    for candidate in _spellings(url):
        if hmac.compare_digest(twilio_signature(auth_token, candidate, params), given):
            return True
    return False


def _spellings(url: str) -> list[str]:
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    default = {"https": "443", "http": "80"}.get(scheme)
    if default and host.endswith(f":{default}"):
        return [url, f"{scheme}://{host.removesuffix(':' + default)}{slash}{path}"]
    if default and ":" not in host:
        return [url, f"{scheme}://{host}:{default}{slash}{path}"]
    return [url]
