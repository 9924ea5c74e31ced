"""The platforms' send APIs, as their documentation describes them: WeChat's customer-service
message API with a cached, refreshed access token, and a Twilio-compatible Messages API. Each
answers what became of a message: sent, refused for good (with the reason), or worth a retry."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

log = logging.getLogger("kefu.gateway")
TOKEN_ERRORS = {40001, 40014, 42001}  # invalid, malformed or expired access token: fetch another once
RETRY_ERRORS = {-1, 45009, 45047}  # busy, API rate limit, too many messages now: later
OUTSIDE_WINDOW = 45015  # the customer last wrote more than 48 hours ago


@dataclass(frozen=True)
class Sent:
    outcome: Literal["sent", "refused", "retry"]
    reason: str = ""
    detail: str = ""
    platform_id: str | None = None


class WeChatApi:
    """One access token per process, fetched when needed and renewed five minutes before it
    expires or when WeChat says it is no longer valid."""

    def __init__(self, http: httpx.AsyncClient, *, app_id: str, app_secret: str) -> None:
        self.http, self.app_id, self.app_secret = http, app_id, app_secret
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def token(self, *, renew: bool = False) -> str:
        async with self._lock:
            if self._token is None or renew or time.monotonic() > self._token[1]:
                answer = (await self.http.get("/cgi-bin/token", params={
                    "grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret})).json()
                if "access_token" not in answer:
                    raise RuntimeError(f"WeChat refused an access token: {answer.get('errcode')} {answer.get('errmsg')}")
                self._token = (answer["access_token"], time.monotonic() + max(int(answer.get("expires_in", 7200)) - 300, 60))
            return self._token[0]

    async def send_text(self, openid: str, text: str) -> Sent:
        body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        answer: dict[str, Any] = {}
        for attempt in range(2):
            response = await self.http.post("/cgi-bin/message/custom/send", params={"access_token": await self.token(
                renew=attempt > 0)}, json=body)
            if response.status_code >= 500:
                return Sent("retry", "platform_unavailable", f"HTTP {response.status_code}")
            answer = response.json()
            code = int(answer.get("errcode", 0))
            if code == 0:
                return Sent("sent")
            if code not in TOKEN_ERRORS:
                break
        code, message = int(answer.get("errcode", 0)), str(answer.get("errmsg", ""))[:200]
        if code == OUTSIDE_WINDOW:
            return Sent("refused", "outside_window", f"{code} {message}: the customer last wrote more than 48 hours ago")
        if code in RETRY_ERRORS or code in TOKEN_ERRORS:
            return Sent("retry", "platform_busy", f"{code} {message}")
        return Sent("refused", "refused", f"{code} {message}")


class SmsApi:
    """A Twilio-compatible Messages API: POST /2010-04-01/Accounts/{sid}/Messages.json."""

    def __init__(self, http: httpx.AsyncClient, *, account_sid: str, auth_token: str, sender: str) -> None:
        self.http, self.account_sid, self.sender = http, account_sid, sender
        self.auth = httpx.BasicAuth(account_sid, auth_token)

    async def send(self, to: str, text: str, *, status_callback: str | None) -> Sent:
        form = {"To": to, "Body": text, ("MessagingServiceSid" if self.sender.startswith("MG") else "From"): self.sender}
        if status_callback:
            form["StatusCallback"] = status_callback
        response = await self.http.post(f"/2010-04-01/Accounts/{self.account_sid}/Messages.json", data=form, auth=self.auth)
        if response.status_code in (429,) or response.status_code >= 500:
            return Sent("retry", "platform_busy", f"HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code >= 400:
            return Sent("refused", "refused", f"{answer.get('code', response.status_code)} {str(answer.get('message', ''))[:200]}")
        return Sent("sent", platform_id=answer.get("sid"))
