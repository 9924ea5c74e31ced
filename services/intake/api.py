"""HTTP edge of intake: adapters' webhook intake, rejected-payload inspection, the customer directory."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import nats.js.errors
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field, field_validator

from shared.contract import subjects as s
from shared.contract.enums import Channel, Tier
from shared.http.errors import ApiError, ErrorBody
from shared.http.security import Admin, audit, require_adapter
from shared.nats import attachments
from shared.runtime import Late

from .domain.canonical import CustomerRecord
from .domain.contacts import mask_id_numbers, normalise_email, normalise_phone
from .domain.schemas import payload_schemas
from .domain.webhooks import BadSignature, may_submit
from .domain.webhooks import verify as verify_signature
from .service import ADMITTED, Intake, Outcome
from .store import Conflict

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Accepted(BaseModel):
    request_id: str | None = Field(description="The request this payload makes, or continues (`appended`), or "
                                   "made or continued before (`duplicate`); null for a survey reply.")
    status: str = Field(description="`accepted` (a new request); `appended` (a follow-up of the customer's "
                        "request: docs/conversations.md); `duplicate` when the payload was seen before; "
                        "`survey_reply` when it is a rating answering the customer's open survey.")
    survey_id: str | None = None


class Ignored(BaseModel):
    status: str = "ignored"
    detail: str = Field(description="`auto_generated`: machine-written mail (kept raw, never answered); or why a "
                        "channel event is not a request (a WeChat subscribe push ...).")


class RejectionBody(ErrorBody):
    """A refused payload: the error, and where its raw bytes are kept."""

    rejection_id: str | None = None


class CustomerIn(BaseModel):
    model_config = {"extra": "forbid"}

    name: str | None = Field(None, max_length=200)
    phones: list[str] = Field(default_factory=list, max_length=20)
    emails: list[str] = Field(default_factory=list, max_length=20)
    wechat_openids: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]] = Field(
        default_factory=list, max_length=20
    )
    app_user_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default_factory=list, max_length=20)
    tier: Tier = Tier.standard
    account_manager: str | None = Field(None, pattern=ID_PATTERN, description="Agent id of the account manager.")

    @field_validator("name")
    @classmethod
    def _no_control(cls, v: str | None) -> str | None:
        if v is not None and any(ord(c) < 32 for c in v):
            raise ValueError("must not contain control characters")
        return v


def _payload_bodies() -> dict[str, Any]:
    """The request body of POST /v1/intake/{channel}: each channel's payload, by media type."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for channel, spec in payload_schemas().items():
        by_type.setdefault(spec["media_type"], []).append(spec["schema"] | {"title": f"{channel.value}: "
                                                                           f"{spec['schema']['title']}"})
    return {"required": True, "description": "The payload exactly as the channel delivers it; the path's `channel` "
            "says which of these it is (docs/api/intake-payloads.json, docs/channels.md).",
            "content": {media: {"schema": schemas[0] if len(schemas) == 1 else {"oneOf": schemas}}
                        for media, schemas in by_type.items()}}


PAYLOADS = _payload_bodies()
REJECTED_REF = Annotated[str, Path(pattern=r"^(rej_[a-z2-7]{26}|[1-9][0-9]{0,18})$",
                                   examples=["rej_3kzq6x2m5vb7n4c8d9f2g3h4j5", "17"])]
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": RejectionBody} for code in (400, 401, 404, 413, 415, 422)}


def build_api(intake: Late[Intake]) -> APIRouter:
    api = APIRouter()

    @api.post(
        "/v1/intake/{channel}",
        status_code=202,
        response_model=Accepted,
        responses={200: {"model": Ignored}, **ERRORS,
                   403: {"model": ErrorBody, "description": "the adapter key is for other channels"},
                   429: {"model": ErrorBody, "description": "over the adapter's rate limit (see Retry-After)"}},
        tags=["intake"],
        summary="Submit a payload exactly as the channel delivers it",
        # an adapter key, or a webhook signature over timestamp and raw body
        openapi_extra={"security": [{"HTTPBearer": []}, {"KefuSignature": []}], "requestBody": PAYLOADS},
    )
    async def submit(channel: str, request: Request) -> Response:
        service = intake()
        settings = service.settings
        limit = settings.max_mail_bytes if channel == "email" else settings.max_payload_bytes
        raw, too_large, received = await _read_limited(request, limit)
        adapter = await _authenticate(request, raw, too_large, service)
        if not may_submit(adapter, channel):
            raise ApiError(403, "forbidden", f"adapter {adapter} may not submit {channel[:32]} payloads")
        raw = mask_id_numbers(raw)  # after the signature check (over the bytes as sent), before anything is kept
        if channel == "email" and len(raw) > settings.max_payload_bytes:
            # a large mail: its large attachments to the object store, the rest kept and read as usual
            raw = await attachments.fit(service.publisher.js, raw, limit=settings.max_payload_bytes)
            received = len(raw)
        wait = service.limiter(adapter).take(time.monotonic())
        if wait > 0:
            return JSONResponse({"error": "rate_limited", "detail": f"adapter {adapter} over its rate limit"},
                                status_code=429, headers={"Retry-After": str(max(1, round(wait)))})

        async def keep(chan: Channel, source_id: str) -> None:
            # the raw payload in KEFU_INTAKE (replayable for 30 days) before anything is published
            # from it, marked admitted: the intake consumer acknowledges it without admitting it again
            await service.publisher.raw(
                s.intake_subject(chan),
                raw,
                msg_id=service.source_msg_id(chan, source_id),
                stream=s.STREAM_INTAKE,
                headers={"Kefu-Via": "http", "Kefu-Adapter": adapter, ADMITTED: "http"},
            )

        outcome = await service.admit(channel_name=channel, raw=raw, stored_at=datetime.now(UTC), via="http",
                                      content_type=request.headers.get("content-type"), size=received, keep=keep)
        return _answer(outcome)

    @api.get(
        "/v1/rejected/{ref}",
        tags=["intake"],
        summary="A rejected payload's kept raw bytes, with the reason in headers. `ref`: the `rejection_id` "
        "the 4xx answer and the request.rejected event carry (`rej_…`), or the event's `raw.seq`",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}, "description": "the raw bytes"},
                   404: {"model": ErrorBody}},
    )
    async def rejected_raw(ref: REJECTED_REF, who: Admin, request: Request) -> Response:
        msg = await _rejected(intake(), ref)
        await audit(request, who, "rejected.read", ref)
        headers = {k: v for k, v in (msg.headers or {}).items() if k.startswith("Kefu-")}
        return Response(msg.data or b"", media_type="application/octet-stream", headers=headers)

    @api.post(
        "/v1/rejected/{ref}/replay",
        status_code=202,
        tags=["intake"],
        summary="Publish a kept rejected payload to intake again (after fixing a parser or config)",
        responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    )
    async def replay(ref: REJECTED_REF, _: Admin) -> dict[str, str]:
        service = intake()
        msg = await _rejected(service, ref)
        seq = msg.seq
        channel = (msg.headers or {}).get("Kefu-Channel", "")
        if channel not in Channel.__members__:
            raise ApiError(409, "unknown_channel", f"payload was sent to unknown channel {channel!r}")
        headers = msg.headers or {}
        if headers.get("Kefu-Truncated") or headers.get("Kefu-Size") != str(len(msg.data or b"")):
            raise ApiError(409, "truncated", "only part of this payload was kept; it cannot be replayed")
        await service.publisher.raw(
            s.intake_subject(channel),
            msg.data or b"",
            msg_id=f"replay:{seq}:{datetime.now(UTC).isoformat()}",
            stream=s.STREAM_INTAKE,
            headers={"Kefu-Via": "nats", "Kefu-Replay-Of": str(seq)},
        )
        return {"status": "replayed", "channel": channel}

    @api.put(
        "/v1/customers/{customer_id}",
        tags=["customers"],
        summary="Register or update a customer, so requests from any of their contacts carry them",
        responses={201: {"model": CustomerRecord}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
        response_model=CustomerRecord,
    )
    async def put_customer(
        customer_id: Annotated[str, Path(pattern=ID_PATTERN)], body: CustomerIn, _: Admin
    ) -> JSONResponse:
        service = intake()
        region = service.settings.phone_region
        phones = [normalise_phone(p, region) for p in body.phones]
        emails = [normalise_email(e) for e in body.emails]
        bad = [p for p, n in zip(body.phones, phones, strict=True) if not n] + [
            e for e, n in zip(body.emails, emails, strict=True) if not n
        ]
        if bad:
            raise ApiError(422, "invalid_body", f"unusable contact(s): {', '.join(map(repr, bad))[:300]}")
        record = CustomerRecord(
            customer_id=customer_id,
            name=body.name,
            phones=sorted(set(filter(None, phones))),
            emails=sorted(set(filter(None, emails))),
            wechat_openids=sorted(set(body.wechat_openids)),
            app_user_ids=sorted(set(body.app_user_ids)),
            tier=body.tier,
            account_manager=body.account_manager,
        )
        try:
            created = await service.store.put_customer(record)
        except Conflict:
            raise ApiError(409, "conflict", "the customer was changed concurrently; retry") from None
        return JSONResponse(record.model_dump(mode="json"), status_code=201 if created else 200)

    @api.get(
        "/v1/customers/{customer_id}",
        tags=["customers"],
        response_model=CustomerRecord,
        responses={404: {"model": ErrorBody}},
    )
    async def get_customer(customer_id: Annotated[str, Path(pattern=ID_PATTERN)], who: Admin,
                           request: Request) -> CustomerRecord:
        found = await intake().store.get_customer(customer_id)
        if found is None:
            raise ApiError(404, "not_found", f"no customer {customer_id}")
        await audit(request, who, "customer.read", customer_id)
        return found[0]

    return api


def _answer(outcome: Outcome) -> JSONResponse:
    """What the adapter is told of its payload's admission."""
    if outcome.status == "rejected":
        rejection = outcome.rejection
        assert rejection is not None
        return JSONResponse({"error": rejection.reason, "detail": rejection.detail,
                             "rejection_id": rejection.rejection_id}, status_code=outcome.http_status)
    if outcome.status == "ignored":
        return JSONResponse({"status": "ignored", "detail": outcome.detail}, status_code=200)
    if outcome.status == "survey_reply":  # a rating answering the customer's open survey
        return JSONResponse({"request_id": None, "status": "survey_reply", "survey_id": outcome.detail}, status_code=202)
    return JSONResponse({"request_id": outcome.request_id, "status": outcome.status}, status_code=202)


async def _authenticate(request: Request, raw: bytes, too_large: bool, service: Intake) -> str:
    """An adapter key (`Authorization: Bearer`), or a signature over timestamp and raw body
    (`Kefu-Signature: t=...,v1=...`, 5-minute window, each signature accepted once)."""
    if request.headers.get("authorization"):
        scheme, _, token = request.headers["authorization"].partition(" ")
        bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if scheme.lower() == "bearer" else None
        return require_adapter(request, bearer)
    header = request.headers.get("kefu-signature")
    if not header:
        raise ApiError(401, "unauthorized", "missing adapter key or Kefu-Signature")
    if too_large:
        raise ApiError(413, "too_large", "body exceeds the size limit")  # unauthenticated: nothing is kept
    try:
        signed = verify_signature(header, raw, service.settings.adapter_secret_map(), now=time.time())
    except BadSignature as exc:
        raise ApiError(401, "bad_signature", str(exc)) from None
    if not await service.store.first_use(signed.replay_key):
        raise ApiError(401, "replayed_signature", "this signature was used before")
    return signed.adapter


async def _read_limited(request: Request, limit: int) -> tuple[bytes, bool, int]:
    """(body, too_large, size received). Reading stops as soon as the body is known to exceed
    `limit`; what was read up to the limit is returned so that it can be kept with the rejection,
    with the size known so far (the declared length, or the bytes seen), so that it is marked as
    only part of the payload."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return b"", True, int(declared)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: max(0, len(chunk) - (size - limit))])
            return b"".join(chunks), True, size
        chunks.append(chunk)
    return b"".join(chunks), False, size


async def _rejected(service: Intake, ref: str):  # -> nats RawStreamMsg
    """By rejection id (the last payload kept under it) or by stream sequence."""
    try:
        if ref.startswith("rej_"):
            return await service.publisher.js.get_last_msg(s.STREAM_REJECTED, f"{s.REJECTED_PREFIX}.*.{ref}")
        return await service.publisher.js.get_msg(s.STREAM_REJECTED, int(ref))
    except nats.js.errors.NotFoundError:
        raise ApiError(404, "not_found", f"no rejected payload {ref}") from None
