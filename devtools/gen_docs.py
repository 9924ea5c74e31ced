"""Generate the contract documents from code: AsyncAPI (NATS) and OpenAPI (HTTP), into docs/api/.

`make docs` writes them; a test regenerates them in memory and fails when the committed copies
differ, so the documents cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from faststream.nats import JStream, NatsBroker
from faststream.specification import AsyncAPI

from services.feedback.app import create_app as feedback_app
from services.intake.app import create_app as intake_app
from services.intake.domain.schemas import payload_schemas
from services.metrics.app import create_app as metrics_app
from services.routing.app import create_app as routing_app
from services.routing.domain import lifecycle as lc
from shared.contract import models as m
from shared.contract import subjects as s
from shared.contract.enums import Channel

OUT = Path(__file__).parents[1] / "docs" / "api"
APPS: dict[str, Callable[[], FastAPI]] = {"intake": intake_app, "routing": routing_app, "feedback": feedback_app, "metrics": metrics_app}

# What kefu publishes (the subscribers are the services' own routers)
PUBLISHED: list[tuple[str, type, str]] = [
    (s.REQUEST_RECEIVED, m.RequestReceived, "A customer's request in canonical form."),
    (s.REQUEST_REJECTED, m.RequestRejected, "A payload that could not be understood; its raw bytes are kept."),
    (s.REQUEST_ASSIGNED, m.RequestAssigned, "Category, priority, emergency, departments, queue and due times."),
    (s.REQUEST_ACCEPTED, m.RequestAccepted, "An agent accepted the request."),
    (s.REQUEST_TRANSFERRED, m.RequestTransferred, "Moved to another department, queue or agent."),
    (s.REQUEST_ESCALATED, m.RequestEscalated, "Escalated (emergency, timeout, supervisor)."),
    (s.REQUEST_RESOLVED, m.RequestResolved, "Resolved, with the resolution."),
    (s.REQUEST_REOPENED, m.RequestReopened, "Taken up again (dissatisfied, recurred)."),
    (s.REQUEST_CLOSED, m.RequestClosed, "Closed."),
    (s.SLA_WARNING, m.SlaWarning, "A deadline is near."),
    (s.SLA_BREACHED, m.SlaBreached, "A deadline passed."),
    (s.SURVEY_SENT, m.SurveySent, "A satisfaction survey was sent; carries its url."),
    (s.SURVEY_ANSWERED, m.SurveyAnswered, "The customer rated the service 1-5."),
    (s.SURVEY_EXPIRED, m.SurveyExpired, "A survey expired unanswered."),
    (s.FOLLOWUP_SCHEDULED, m.FollowupScheduled, "A revisit is due."),
    (s.FOLLOWUP_COMPLETED, m.FollowupCompleted, "A revisit was done."),
    (lc.REQUEST_DISPATCHED, lc.RequestDispatched, "Offered to an agent (kefu extension)."),
    (lc.REQUEST_NOTED, lc.RequestNoted, "A note; to_customer notes also go out as progress (kefu extension)."),
    (lc.REQUEST_PENDING, lc.RequestPending, "Waiting on the customer; SLA clocks paused (kefu extension)."),
    (lc.REQUEST_RESUMED, lc.RequestResumed, "The customer replied; SLA clocks run again (kefu extension)."),
    (s.SURVEY_REPLIED, m.SurveyReplied, "A customer's answer as given, before it is recorded (kefu extension)."),
]


def asyncapi() -> dict[str, Any]:
    # each service's broker documents what it consumes; building an app connects to nothing
    consumers = [create_app().state.runtime.broker for create_app in APPS.values()]
    broker = NatsBroker()
    events = JStream(s.STREAM_EVENTS, declare=False)
    for subject, model, description in PUBLISHED:
        broker.publisher(subject, stream=events, schema=model, title=subject, description=description)

    def publishes(subject: str, stream: str, model: type, description: str, title: str | None = None) -> None:
        broker.publisher(subject, stream=JStream(stream, declare=False), schema=model, title=title or subject,
                         description=description)

    for channel in Channel:
        publishes(s.outbound_subject(channel), s.STREAM_OUTBOUND, m.OutboundMessage,
                  f"Messages for customers on {channel.value}, for its adapter to deliver.")
    publishes("kefu.outbound.supervisor.{department}", s.STREAM_OUTBOUND, m.SupervisorAlert,
              "Alerts for a department's supervisors: emergencies, escalations, offers nobody accepted.",
              title="kefu.outbound.supervisor.<department>")
    for action, what in (("request.read", "a request's record (routing)"), ("customer.read", "a customer (intake)"),
                         ("rejected.read", "a rejected payload's raw bytes (intake)")):
        publishes(s.audit_subject(action), s.STREAM_AUDIT, m.AuditRecord,
                  f"Audit trail: a staff member read {what} through the API.")
    spec = AsyncAPI(
        *consumers,
        broker,
        title="kefu",
        version="0.1.0",
        description="kefu's NATS contract: what adapters publish (kefu.intake.<channel>, raw channel formats, "
        "JetStream stream KEFU_INTAKE) and what kefu publishes (KEFU_EVENTS, KEFU_OUTBOUND, KEFU_AUDIT).",
    )
    return nats_bindings(json.loads(spec.to_specification().to_json()))


NATS_BINDING_VERSION = "0.1.0"  # asyncapi/bindings, nats: only operations have fields (queue)


def nats_bindings(doc: dict[str, Any]) -> dict[str, Any]:
    """FastStream writes a `subject` into channel bindings and a `custom` binding version, which the
    NATS binding does not define (a channel's subject is its `address`), and lists its generator's
    default servers. Keep what the binding defines and name the one server kefu documents."""
    doc["servers"] = {"development": {
        "host": "127.0.0.1:4222", "protocol": "nats",
        "description": "`make run`'s bundled nats-server; deployments set KEFU_NATS_URL (docs/deploy.md)."}}
    for channel in doc.get("channels", {}).values():
        channel.pop("bindings", None)
        channel.pop("servers", None)
    for operation in doc.get("operations", {}).values():
        binding = (operation.get("bindings") or {}).get("nats")
        if binding is not None:
            kept = {k: v for k, v in binding.items() if k == "queue"}
            operation["bindings"] = {"nats": kept | {"bindingVersion": NATS_BINDING_VERSION}}
    return doc


def openapi(name: str) -> dict[str, Any]:
    return APPS[name]().openapi()


def intake_payloads() -> dict[str, Any]:
    """Each channel's payload as intake reads it (JSON Schema 2020-12), for adapter authors."""
    return {"$comment": "What intake reads from each channel's payload: docs/channels.md. Generated by make docs.",
            "channels": {channel.value: spec for channel, spec in payload_schemas().items()}}


def documents() -> dict[str, str]:
    docs = {"asyncapi.json": asyncapi()} | {f"openapi-{name}.json": openapi(name) for name in APPS}
    docs["intake-payloads.json"] = intake_payloads()
    return {file: json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n" for file, doc in docs.items()}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for file, text in documents().items():
        (OUT / file).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
