"""Messages feedback sends customers (result, survey, reminder, revisit) and supervisors (reopen)."""

from __future__ import annotations

from datetime import datetime

from shared.contract.enums import Language
from shared.contract.models import OutboundMessage

from .rules import Messages
from .survey import RequestView


def short_ref(request_id: str) -> str:
    return request_id.removeprefix("req_")[:8].upper()


def message(view: RequestView, *, kind: str, message_id: str, text: str, at: datetime) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id, request_id=view.request_id, channel=view.channel, kind=kind,
        to=view.customer.contacts, language=view.language, text=text, occurred_at=at,
    )


def result_text(view: RequestView, messages: Messages) -> str:
    return messages.result[view.language].format(ref=short_ref(view.request_id), resolution=view.resolution or "")


def survey_text(language: Language, messages: Messages, *, url: str, reminder: bool = False) -> str:
    return (messages.reminder if reminder else messages.survey)[language].format(url=url)


def revisit_text(view: RequestView, messages: Messages) -> str:
    return messages.revisit[view.language].format(ref=short_ref(view.request_id))
