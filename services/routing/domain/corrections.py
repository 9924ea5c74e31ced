"""Agents' corrections as labelled rows for the tuning set, pure: what each corrected request
really was (the last correction of each field wins, the rest is routing's own judgement), with the
customer's words masked. `kefu corrections export` writes them as JSON lines in the format of
tests/data/labelled_requests.jsonl, so a team can add them to its tuning set and measure candidate
rules on them (`kefu policy evaluate`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from shared.observability.logs import mask

from .dryrun import Recorded

# what `mask` leaves: account, card, order and policy numbers (a run of 6 or more digits, spaces or
# dashes inside), and the customer's own name where the text repeats it
_NUMBER = re.compile(r"(?<![0-9A-Za-z<])\d(?:[\d -]{4,}\d)(?![0-9A-Za-z>])")
MAX_TEXT = 2000


def masked(text: str, *, names: Iterable[str] = ()) -> str:
    """The text without the personal data a labelled row does not need: e-mail addresses, phone
    and id numbers (the log mask), long numbers, and the customer's name."""
    text = mask(text)
    text = _NUMBER.sub("<number>", text)
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True):
        text = text.replace(name, "<name>")
    return text


def labelled_rows(recorded: Iterable[Recorded]) -> list[dict[str, Any]]:
    """One row per request with at least one category or priority correction (a department move is
    routing's table, not the words' judgement: it is kept in `corrected` but makes no row alone)."""
    rows: list[dict[str, Any]] = []
    for r in sorted(recorded, key=lambda r: r.received.received_at):
        if r.assigned is None:
            continue
        corrected = {name: {"judged": judged, "label": label} for name, (judged, label) in r.corrected().items()}
        if not ({"category", "priority"} & corrected.keys()):
            continue
        final = {"category": r.assigned.category.value, "priority": r.assigned.priority.value}
        final |= {name: c["label"] for name, c in corrected.items() if name in final}
        reasons = [c.reason for c in sorted(r.corrections, key=lambda c: c.occurred_at) if c.reason]
        customer = r.received.customer
        text = "\n".join(part for part in (r.received.subject, r.received.body) if part)
        rows.append({
            "id": f"C-{r.received.request_id}",
            "channel": r.received.channel.value,
            "language": r.received.language.value,
            "category": final["category"],
            "priority": final["priority"],
            "emergency": r.assigned.emergency,
            "near_miss": False,
            "text": masked(text, names=[customer.name or ""])[:MAX_TEXT],
            "source": "correction",
            "corrected": corrected,
            "reasons": [masked(reason, names=[customer.name or ""]) for reason in reasons],
        })
    return rows
