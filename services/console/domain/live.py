"""What the console's live stream shows, and to whom. Pure: an event in, the page's notice out;
a request's access facts and a staff principal in, yes or no out.

The page is told *that* something happened to a request it may read (an offer, a follow-up, an
SLA warning, an emergency ...) and reloads what it shows through the API, which is scoped and
audited; the stream itself carries no customer data. A notice goes to a person only if
`GET /v1/requests/{id}` would show them the request at that moment (shared.http.auth's rule,
applied to routing's current record)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from shared.contract import subjects as s
from shared.http import auth

# the events a page must show without reloading; others (receipts, surveys, audit) are not sent
LIVE: dict[str, str] = {
    s.REQUEST_ASSIGNED: "assigned",
    s.REQUEST_DISPATCHED: "offered",
    s.REQUEST_ACCEPTED: "accepted",
    s.REQUEST_TRANSFERRED: "transferred",
    s.REQUEST_CORRECTED: "corrected",
    s.REQUEST_ESCALATED: "escalated",
    s.REQUEST_RESOLVED: "resolved",
    s.REQUEST_REOPENED: "reopened",
    s.REQUEST_CLOSED: "closed",
    s.REQUEST_NOTED: "noted",
    s.REQUEST_PENDING: "pending",
    s.REQUEST_RESUMED: "resumed",
    s.REQUEST_REPLIED: "replied",
    s.REQUEST_MESSAGE: "customer_wrote",
    s.SLA_WARNING: "sla_warning",
    s.SLA_BREACHED: "sla_breached",
}


class Access(BaseModel):
    """Who may read a request: the facts of routing's record that shared.http.auth decides on."""

    department: str | None
    co_departments: list[str] = Field(default_factory=list)
    agent_id: str | None = None


def access_of(record: bytes) -> Access:
    """Routing's record (kefu_requests) as read from its bucket; only the access facts are kept."""
    data = json.loads(record)
    return Access(department=data.get("department"),
                  co_departments=(data.get("assignment") or {}).get("co_departments") or [],
                  agent_id=data.get("agent_id"))


class Notice(BaseModel):
    """One line of the live stream: what happened to which request; never what anyone wrote."""

    kind: str
    request_id: str
    at: str | None = None
    agent_id: str | None = Field(None, description="offered, accepted, transferred: the agent concerned.")
    emergency: bool = False
    priority: str | None = None
    sla: str | None = Field(None, description="sla_warning, sla_breached: which deadline.")


def notice(subject: str, event: dict[str, Any]) -> Notice | None:
    """The page's notice of an event, or None when pages do not show it."""
    kind = LIVE.get(subject)
    request_id = event.get("request_id")
    if kind is None or not isinstance(request_id, str):
        return None
    agent = event.get("agent_id")
    return Notice(kind=kind, request_id=request_id, at=event.get("occurred_at"),
                  agent_id=agent if isinstance(agent, str) else None, emergency=event.get("emergency") is True,
                  priority=event.get("priority") if isinstance(event.get("priority"), str) else None,
                  sla=event.get("sla") if isinstance(event.get("sla"), str) else None)


def may_see(p: auth.Principal, access: Access | None, n: Notice) -> bool:
    """Shown to `p` if they may read the request now; an offer also to the agent it was made to
    (the record may already have moved on when the notice is read back from the log)."""
    if p.is_admin:
        return True
    if n.kind == "offered" and p.role == "agent" and n.agent_id == p.subject:
        return True
    if access is None:  # no record (yet, or any more): nothing to show but to admins
        return False
    return auth.may_read_request(p, department=access.department, co_departments=access.co_departments,
                                 agent_id=access.agent_id)
