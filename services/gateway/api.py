"""HTTP edge of the gateway: the URLs the platforms call. Each checks the platform's signature,
stores the push in KEFU_INTAKE, and only then answers as the platform expects."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from shared.contract.enums import Channel
from shared.http.errors import ApiError, ErrorBody
from shared.runtime import Late

from .domain import twilio, wechat
from .service import Gateway
from .settings import GatewaySettings

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 403, 413)}
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_FORM = 64 * 1024
Q = Annotated[str, Query(max_length=200)]
OptionalQ = Annotated[str | None, Query(max_length=200)]


def refusal(refused: wechat.Refused) -> ApiError:
    return ApiError(refused.status, refused.error, refused.detail)


def build_api(settings: GatewaySettings, gateway: Late[Gateway]) -> APIRouter:
    api = APIRouter()
    platforms = settings.enabled()

    if "wechat" in platforms:
        token = settings.wechat_token.get_secret_value() if settings.wechat_token else ""
        crypto = (wechat.Crypto(encoding_aes_key=settings.wechat_encoding_aes_key.get_secret_value(),
                                app_id=settings.wechat_app_id) if settings.wechat_encoding_aes_key else None)

        @api.get("/wechat", tags=["wechat"], response_class=PlainTextResponse, responses=ERRORS,
                 summary="WeChat's server URL check: echoes `echostr` when the signature is WeChat's")
        async def wechat_check(signature: Q, timestamp: Q, nonce: Q, echostr: Q) -> PlainTextResponse:
            try:
                wechat.check_signature(signature, token, timestamp, nonce)
            except wechat.Refused as refused:
                raise refusal(refused) from None
            return PlainTextResponse(echostr)

        @api.post("/wechat", tags=["wechat"], response_class=PlainTextResponse, responses=ERRORS,
                  summary="A push from WeChat (plain, compatible or safe mode): signature and time checked, "
                  "decrypted, stored in KEFU_INTAKE, answered `success`")
        async def wechat_push(request: Request, signature: Q, timestamp: Q, nonce: Q,
                              encrypt_type: OptionalQ = None, msg_signature: OptionalQ = None,
                              openid: OptionalQ = None) -> PlainTextResponse:
            body = await request.body()
            try:
                wechat.check_signature(signature, token, timestamp, nonce)
                wechat.check_fresh(timestamp, now=time.time(), window=settings.wechat_replay_window_seconds)
                if encrypt_type == "aes":
                    if crypto is None:
                        raise wechat.Refused(400, "invalid_request", "an encrypted push, and no EncodingAESKey is set")
                    encrypted = wechat.field(wechat.xml_root(body), "Encrypt") or ""
                    wechat.check_signature(msg_signature, token, timestamp, nonce, encrypted)
                    plain = crypto.decrypt(encrypted)
                else:
                    plain = body
                key = wechat.dedup_key(plain)
            except wechat.Refused as refused:
                gateway().metrics.pushes.labels("wechat", refused.error).inc()
                raise refusal(refused) from None
            await gateway().store_push(Channel.wechat, plain, key)
            return PlainTextResponse("success")  # WeChat shows the customer nothing for "success"

    if "sms" in platforms:
        auth_token = settings.sms_auth_token.get_secret_value() if settings.sms_auth_token else ""
        public = settings.sms_public_url.rstrip("/")

        async def signed_form(request: Request, path: str) -> list[tuple[str, str]]:
            body = await request.body()
            if len(body) > MAX_FORM:
                raise ApiError(413, "too_large", f"at most {MAX_FORM} bytes")
            try:
                params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
            except (UnicodeDecodeError, ValueError) as exc:
                raise ApiError(400, "invalid_request", f"not a form post: {exc}") from None
            # the URL Twilio posted to: as configured (a proxy in front changes what kefu sees), else as received
            base = public or str(request.base_url).rstrip("/")
            url = f"{base}{path}" + (f"?{request.url.query}" if request.url.query else "")
            if not twilio.valid(auth_token, url, params, request.headers.get("X-Twilio-Signature")):
                gateway().metrics.pushes.labels("sms", "bad_signature").inc()
                raise ApiError(403, "bad_signature", "X-Twilio-Signature does not sign this request with the "
                               "configured auth token and URL (KEFU_GATEWAY_SMS_PUBLIC_URL)")
            return params

        @api.post("/sms", tags=["sms"], responses=ERRORS,
                  summary="An incoming SMS or MMS from a Twilio-compatible gateway: signature checked, stored in "
                  "KEFU_INTAKE as posted, answered with empty TwiML (kefu answers later, through the API)")
        async def sms_in(request: Request) -> Response:
            params = dict(await signed_form(request, "/sms"))
            sid = params.get("MessageSid") or params.get("SmsSid")
            if not sid:
                raise ApiError(400, "invalid_request", "no MessageSid")
            await gateway().store_push(Channel.sms, await request.body(), sid[:100])
            return Response(TWIML_EMPTY, media_type="text/xml")

        @api.post("/sms/status", tags=["sms"], responses=ERRORS,
                  summary="A delivery status callback: `delivered` -> kefu.events.outbound.delivered, "
                  "`failed`/`undelivered` -> kefu.events.outbound.failed")
        async def sms_status(request: Request, message_id: Annotated[str, Query(max_length=200)],
                             request_id: OptionalQ = None) -> dict[str, str | None]:
            params = dict(await signed_form(request, "/sms/status"))
            published = await gateway().sms_status(
                message_id=message_id, request_id=request_id, status=(params.get("MessageStatus") or "").lower(),
                sid=params.get("MessageSid"), error=params.get("ErrorCode"))
            return {"status": "recorded", "published": published}

    return api
