"""Intake's one admission decision for every payload, whether it came over NATS or HTTP (`admit`):
parse (domain) -> dedup -> survey reply? -> recognise the customer -> publish `request.received`.
Anything that cannot be understood is kept raw and published as `request.rejected`. Each payload
is admitted once: the HTTP edge admits it before it answers (and stores the raw payload marked
admitted), the NATS edge admits what adapters stored.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import nats.js.errors
from prometheus_client import CollectorRegistry, Counter

from shared.contract import subjects as s
from shared.contract.conversation import MessageIgnored, OutboundFailed, RequestMessage, outbound_id, request_named
from shared.contract.enums import Channel
from shared.contract.models import RawRef, RequestRejected, SurveyReplied
from shared.nats import kv
from shared.nats.publish import Publisher, together

from .domain.canonical import canonical_request, customer_ref, rejection_id_for, request_id_for, source_key
from .domain.contacts import mask_id_numbers
from .domain.errors import NotARequest, PayloadTooLarge, Rejection
from .domain.identity import proof, recognise
from .domain.model import ParsedRequest
from .domain.parsers import ParseContext, channel_of, check_media_type, parse
from .domain.replies import rating_of, reply_contact
from .domain.threading import (
    Claim,
    Incoming,
    Policy,
    Seen,
    SenderThreads,
    claim_message,
    hashed_id,
    message_key,
    parse_windows,
    sender_key,
    touched,
)
from .domain.webhooks import TokenBucket
from .settings import IntakeSettings
from .store import IntakeStore, sender_entry

log = logging.getLogger("kefu.intake")

Via = Literal["http", "nats"]
OUTCOMES = ("accepted", "appended", "duplicate", "rejected", "ignored", "survey_reply")


# On a payload in KEFU_INTAKE that was admitted when it was stored (by the HTTP edge, or a masked
# copy): the consumer acknowledges it without admitting it again.
ADMITTED = "Kefu-Admitted"
Keep = Callable[[Channel, str], Awaitable[None]]  # (channel, source id) of a new payload


@dataclass(frozen=True)
class Outcome:
    status: Literal["accepted", "appended", "duplicate", "rejected", "ignored", "survey_reply"]
    request_id: str | None = None
    rejection: RequestRejected | None = None
    detail: str | None = None  # why ignored or rejected; the survey answered, for a survey reply
    http_status: int = 202  # what the HTTP edge answers (a rejection's own status)


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.payloads = Counter(
            "kefu_intake_payloads_total",
            "Payloads intake handled, by channel and outcome (accepted, appended, duplicate, rejected, ignored, "
            "survey_reply).",
            ["channel", "outcome"],
            registry=registry,
        )
        for channel in Channel:
            for outcome in OUTCOMES:
                self.payloads.labels(channel.value, outcome)


class Intake:
    def __init__(
        self, *, settings: IntakeSettings, store: IntakeStore, publisher: Publisher, metrics: IntakeMetrics
    ) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.tz = ZoneInfo(settings.timezone)
        self._buckets: dict[str, TokenBucket] = {}
        self._authserv_ids = tuple(i.strip() for i in settings.mail_authserv_ids.split(",") if i.strip())
        self.policy = Policy(windows=parse_windows(settings.conversation_windows))

    def limiter(self, adapter: str) -> TokenBucket:
        if adapter not in self._buckets:
            self._buckets[adapter] = TokenBucket(self.settings.rate_limit_per_second, self.settings.rate_limit_burst)
        return self._buckets[adapter]

    def context(self, now: datetime) -> ParseContext:
        return ParseContext(now=now, tz=self.tz, region=self.settings.phone_region,
                            mail_authserv_ids=self._authserv_ids)

    async def replace_stored(self, *, subject: str, masked: bytes, seq: int, headers: dict[str, str]) -> None:
        """A payload an adapter stored with identity numbers in clear, once admitted from its masked
        bytes: keep the masked copy (marked admitted, so the consumer does not take it again) and
        erase the original. Idempotent: the copy's Nats-Msg-Id is the original's sequence, and
        erasing twice is harmless."""
        kept = {k: v for k, v in headers.items() if k.startswith("Kefu-")}
        await self.publisher.raw(subject, masked, msg_id=f"masked:{seq}", stream=s.STREAM_INTAKE,
                                 headers=kept | {"Kefu-Masked-Of": str(seq), ADMITTED: "nats"})
        with contextlib.suppress(nats.js.errors.NotFoundError):
            # erased: the block is written again without it (docs/channels.md says what that costs)
            await self.publisher.js.delete_msg(s.STREAM_INTAKE, seq)
        log.info("identity numbers masked in a stored payload", extra={"seq": seq})

    async def admit(self, *, channel_name: str, raw: bytes, stored_at: datetime, via: Via,
                    content_type: str | None = None, size: int | None = None,
                    keep: Keep | None = None) -> Outcome:
        """The one admission decision, for both edges: parse, then the dedup check, the survey-reply
        check and the customer lookup together, then publish `request.received` (or the survey
        answer), or keep the payload as rejected. Safe to call again for the same payload.

        `content_type`, `size`: what the HTTP edge knows (a body over the limit is only partly read);
        `keep`: awaited once the payload is known to be new, before anything is published (the HTTP
        edge stores the raw payload in KEFU_INTAKE there, the NATS edge's is stored already)."""
        now = datetime.now(UTC)
        try:
            channel = channel_of(channel_name)
            size = max(size or 0, len(raw))
            if size > self.settings.max_payload_bytes:
                raise PayloadTooLarge(f"payload is {size} bytes; the limit is {self.settings.max_payload_bytes}")
            check_media_type(channel, content_type)
            parsed = parse(channel, raw, self.context(now))
        except Rejection as rejection:
            return await self.reject(channel_name=channel_name, raw=raw, rejection=rejection, via=via,
                                     received_size=size)
        except NotARequest as ignored:
            self._count(channel_name, "ignored")
            log.info("not a request", extra={"channel": channel_name, "detail": ignored.detail})
            return Outcome("ignored", detail=ignored.detail)

        key = message_key(channel, parsed)
        sender = sender_key(channel, parsed, self.policy)
        # four independent reads in one round trip (the client sends them together): a payload
        # seen before wastes the others, every new one saves their waits
        proven = proof(channel, parsed.contact, attested=parsed.attested)
        seen, survey_id, matches, threads, legacy = await together(
            self.store.seen(channel, key), self.survey_reply_target(channel, parsed),
            self.store.registered(parsed.contact), self.store.sender_threads(sender),
            self._legacy_session(channel, parsed, key))
        if not seen and legacy and threads[0] is None:
            seen = legacy  # a chat session made before conversations: as it was then, one request
        if seen:
            self._count(channel, "duplicate")
            if seen.startswith("survey:"):
                # the same answer again: told as the survey reply it was (counted as a duplicate)
                return Outcome("survey_reply", detail=seen.removeprefix("survey:"))
            if seen == "ignored":
                return Outcome("ignored", detail="auto_generated", http_status=200)
            return Outcome("duplicate", request_id=seen.removeprefix("append:"))
        if keep is not None:
            await keep(channel, parsed.source_id)
        if parsed.thread.auto:
            return await self._ignore(channel, parsed, raw, key=key, via=via, reason=parsed.thread.auto)
        if survey_id is not None:
            return await self._survey_reply(channel, parsed, survey_id, now)
        claim: Claim | None = None
        if sender is not None:
            found = await self._thread(channel, parsed, key=key, sender=sender, known=threads, now=now, at=stored_at)
            if isinstance(found, Seen):  # a web chat transcript with no new line
                self._count(channel, "duplicate")
                return Outcome("duplicate", request_id=found.request_id)
            assert isinstance(found, Claim)
            claim = found
            if claim.kind == "append":
                return await self._append(channel, parsed, claim, key=key, at=stored_at, now=now)
            if claim.follow_up_of is not None:
                parsed = parsed.model_copy(update={"source_id": key})  # the session's or thread's next request
        request_id = request_id_for(channel, parsed.source_id)
        record_, possible = recognise(matches, proven.proven)
        event = canonical_request(
            channel=channel,
            parsed=parsed,
            customer=customer_ref(parsed.contact, record_, proof=proven, possible_customer_id=possible),
            intake_time=stored_at,
            now=now,
        )
        if claim is not None and claim.follow_up_of:
            event.follow_up_of = claim.follow_up_of
        event.conversation = sender
        # publish first, then mark: a crash in between re-publishes with the same Nats-Msg-Id,
        # which the stream drops; marking first could lose the request
        await self.publisher.model(s.REQUEST_RECEIVED, event, msg_id=f"received:{request_id}")
        await self.store.mark(channel, key, request_id)
        self._count(channel, "accepted")
        log.info("request received", extra={"request_id": request_id, "channel": channel.value, "via": via})
        return Outcome("accepted", request_id=request_id)

    async def _legacy_session(self, channel: Channel, parsed: ParsedRequest, key: str) -> str | None:
        """A web chat session marked seen under its bare session id (kefu before conversations marked
        it so; now each transcript is marked `<session>#<lines>`): its request, else None."""
        if key == parsed.source_id:
            return None
        return await self.store.seen(channel, parsed.source_id)

    async def _thread(self, channel: Channel, parsed: ParsedRequest, *, key: str, sender: str,
                      known: tuple[SenderThreads | None, int], now: datetime, at: datetime) -> Claim | Seen:
        """The threading decision (threading.claim_message), claimed in the sender's entry with a
        revision check before anything is published: two messages of one sender at once are decided
        one after the other (the loser of the write decides again and sees the winner's request)."""
        lines = parsed.thread.lines
        message = Incoming(channel=channel, key=key, source_id=parsed.source_id,
                           text=f"{parsed.subject or ''}\n{parsed.body}", references=tuple(parsed.thread.references),
                           lines=len(lines) if lines is not None else None, at=at)
        outcome: list[Claim | Seen] = []

        def transition(current: SenderThreads | None) -> SenderThreads | None:
            made, entry = claim_message(current, message, self.policy, now,
                                        message_id=parsed.source_id if channel is Channel.email else None)
            outcome[:] = [made]
            return entry

        await kv.apply(self.store.threads, sender_entry(sender), transition, known=known)
        return outcome[0]

    async def _append(self, channel: Channel, parsed: ParsedRequest, claim: Claim, *, key: str, at: datetime,
                      now: datetime) -> Outcome:
        lines = parsed.thread.lines
        text = "\n".join(lines[claim.from_line:]) if lines is not None else parsed.body
        assert claim.matched_by is not None
        message = RequestMessage(
            request_id=claim.request_id, channel=channel, source_id=key, text=text, subject=parsed.subject,
            received_at=parsed.received_at or at, matched_by=claim.matched_by, occurred_at=now,
            message_id=parsed.source_id if channel is Channel.email else None,
            attachments=[a.model_dump(mode="json") for a in parsed.attachments])
        await self.publisher.model(s.REQUEST_MESSAGE, message, msg_id=f"message:{source_key(channel, key)}")
        await self.store.mark(channel, key, f"append:{claim.request_id}")
        self._count(channel, "appended")
        log.info("message appended", extra={"request_id": claim.request_id, "channel": channel.value,
                                            "matched_by": claim.matched_by})
        return Outcome("appended", request_id=claim.request_id)

    async def _ignore(self, channel: Channel, parsed: ParsedRequest, raw: bytes, *, key: str, via: Via,
                      reason: str) -> Outcome:
        """Mail no person wrote: kept with its raw bytes, never answered; a bounce of kefu's own
        message is also told as `outbound.failed`."""
        kept_id, ref = await self._keep_raw(channel.value, raw, reason="auto_generated", detail=reason, via=via)
        ignored = MessageIgnored(channel=channel.value, reason="auto_generated", detail=reason,
                                 source_id=parsed.source_id, raw=ref)
        bounces = [(mid, request_named(mid)) for mid in parsed.thread.bounced]
        await together(
            self.publisher.model(s.MESSAGE_IGNORED, ignored, msg_id=f"ignored:{kept_id}"),
            *(self.publisher.model(s.OUTBOUND_FAILED, OutboundFailed(
                message_id=outbound_id(mid), request_id=request_id, reason="bounced", detail=reason[:200]),
                msg_id=f"failed:{hashed_id(mid)}") for mid, request_id in bounces if request_id))
        await self.store.mark(channel, key, "ignored")
        self._count(channel, "ignored")
        log.info("auto-generated message ignored", extra={"channel": channel.value, "detail": reason})
        return Outcome("ignored", detail="auto_generated", http_status=200)

    async def on_thread_event(self, subject: str, request_id: str, sender: str | None, at: datetime) -> None:
        """A request closed, reopened or answered by an agent: its sender's thread follows. `sender`:
        the event's `conversation` (None: a request from a channel that does not thread)."""
        if sender is None:
            return
        state: Literal["open", "closed"] | None = (
            "closed" if subject == s.REQUEST_CLOSED else "open" if subject == s.REQUEST_REOPENED else None)
        await self.store.threads.change(
            sender_entry(sender),
            lambda current: touched(current, request_id, state=state,
                                    at=at if subject == s.REQUEST_REPLIED else None) or current)

    async def survey_reply_target(self, channel: Channel, parsed: ParsedRequest) -> str | None:
        """The open survey this message answers, when it is a bare rating from that customer."""
        contact = reply_contact(channel, parsed)
        if contact is None or rating_of(parsed.body) is None:
            return None
        return await self.store.open_survey(*contact)

    async def _survey_reply(self, channel: Channel, parsed: ParsedRequest, survey_id: str, now: datetime) -> Outcome:
        """An answer to the customer's open survey instead of a new request."""
        rating = rating_of(parsed.body)
        assert rating is not None
        reply = SurveyReplied(survey_id=survey_id, channel=channel, rating=rating, via="reply",
                              source_id=parsed.source_id, occurred_at=now)
        key = source_key(channel, parsed.source_id)
        await self.publisher.model(s.SURVEY_REPLIED, reply, msg_id=f"replied:{key}")
        await self.store.mark(channel, parsed.source_id, f"survey:{survey_id}")
        self._count(channel, "survey_reply")
        log.info("survey answered by reply", extra={"survey_id": survey_id, "channel": channel.value})
        return Outcome("survey_reply", detail=survey_id)

    async def reject(self, *, channel_name: str, raw: bytes, rejection: Rejection, via: Via,
                     received_size: int | None = None) -> Outcome:
        """Keep the raw bytes in KEFU_REJECTED and publish `request.rejected` (idempotent).
        `received_size`: the payload's real size when `raw` is only its beginning (a body cut off
        at the size limit); what is kept is then marked truncated and can never be replayed."""
        rejection_id, ref = await self._keep_raw(channel_name, raw, reason=rejection.reason, detail=rejection.detail,
                                                 via=via, received_size=received_size)
        safe_channel = _safe_channel(channel_name)
        event = RequestRejected(rejection_id=rejection_id, channel=safe_channel, reason=rejection.reason,
                                detail=rejection.detail, raw=ref, via=via)
        await self.publisher.model(s.REQUEST_REJECTED, event, msg_id=f"rejected:{rejection_id}")
        self._count(channel_name, "rejected")
        log.info(
            "payload rejected",
            extra={"rejection_id": rejection_id, "channel": safe_channel, "reason": rejection.reason},
        )
        return Outcome("rejected", rejection=event, detail=rejection.detail, http_status=rejection.status)

    async def _keep_raw(self, channel_name: str, raw: bytes, *, reason: str, detail: str, via: Via,
                        received_size: int | None = None) -> tuple[str, RawRef]:
        """The payload's raw bytes (identity numbers masked) kept in KEFU_REJECTED under
        `kefu.rejected.<channel>.<id>`: rejected payloads and ignored messages alike."""
        raw = mask_id_numbers(raw)
        kept_id = rejection_id_for(channel_name, raw)
        kept = raw[: self.settings.kept_reject_bytes]
        size = max(received_size or 0, len(raw))
        ack = await self.publisher.raw(
            s.rejected_subject(channel_name, kept_id),
            kept,
            msg_id=f"raw:{kept_id}",
            stream=s.STREAM_REJECTED,
            headers={
                "Kefu-Rejection-Id": kept_id,
                "Kefu-Channel": _ascii(_safe_channel(channel_name)),
                "Kefu-Reason": reason,
                "Kefu-Detail": _ascii(detail),
                "Kefu-Size": str(size),
                "Kefu-Via": via,
                **({"Kefu-Truncated": "true"} if len(kept) < size else {}),
            },
        )
        return kept_id, RawRef(stream=s.STREAM_REJECTED, seq=ack.seq, size=size, kept_bytes=len(kept))

    def source_msg_id(self, channel: Channel, source_id: str) -> str:
        return f"intake:{source_key(channel, source_id)}"

    def _count(self, channel: str, outcome: str) -> None:
        if channel in Channel.__members__:
            self.metrics.payloads.labels(channel, outcome).inc()


def _safe_channel(name: str) -> str:
    return "".join(c for c in name[:40] if c.isprintable())


def _ascii(text: str) -> str:
    """Header-safe: printable ASCII only (no CR/LF injection), bounded."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:400]
