"""Messages feedback sends customers (result, survey, reminder, revisit) and supervisors (reopen)."""

from __future__ import annotations

from datetime import datetime

from shared.contract.conversation import DEFAULT_SUBJECT, mail_thread, short_ref
from shared.contract.enums import Channel, Language
from shared.contract.models import OutboundMessage

from .rules import Messages
from .survey import RequestView

AUTOMATIC = ("survey", "revisit")  # written by no person: they count against the loop guard


def message(domain: str, view: RequestView, *, kind: str, message_id: str, text: str, at: datetime) -> OutboundMessage:
    """A message to the customer; by e-mail in the request's thread (`domain`: of its Message-ID)."""
    thread = mail_thread(message_id=message_id, request_id=view.request_id, domain=domain, subject=view.subject,
                         customer_message_ids=view.mail_thread_ids, default_subject=DEFAULT_SUBJECT[view.language]
                         ) if view.channel is Channel.email else None
    return OutboundMessage(
        message_id=message_id, request_id=view.request_id, channel=view.channel, kind=kind,
        to=view.customer.contacts, language=view.language, text=text, occurred_at=at, thread=thread,
        automatic=kind in AUTOMATIC,
    )


def result_text(view: RequestView, messages: Messages) -> str:
    return messages.result[view.language].format(ref=short_ref(view.request_id), resolution=view.resolution or "")


def survey_text(language: Language, messages: Messages, *, url: str, reminder: bool = False) -> str:
    return (messages.reminder if reminder else messages.survey)[language].format(url=url)


def revisit_text(view: RequestView, messages: Messages) -> str:
    return messages.revisit[view.language].format(ref=short_ref(view.request_id))
