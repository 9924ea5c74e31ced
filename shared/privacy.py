"""Keys derived from personal data: hashed, because KV keys and logs are read in clear."""

from __future__ import annotations

import hashlib


def contact_key(kind: str, value: str) -> str:
    """KV key of a normalised contact (`phone`, `email`, `wechat`, `app`)."""
    digest = hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:40]
    return f"{kind}.{digest}"
