"""Who may call: bearer tokens (admin, staff JWTs with revocation, adapter keys) and the audit of reads.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import nats.js.errors
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..contract import subjects as s
from ..contract.models import AuditRecord
from ..settings import KefuSettings
from . import auth
from .errors import ApiError

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("kefu.security")


_BEARER = HTTPBearer(auto_error=False, description="Adapter key, staff token or admin token.")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    # FastAPI's HTTPBearer parses the header and documents the scheme; kefu answers its own errors
    if credentials is None or not credentials.credentials.strip():
        raise ApiError(401, "unauthorized", "missing bearer token")
    return credentials.credentials.strip()


def _matches(token: str, secret: str) -> bool:
    return hmac.compare_digest(token.encode(), secret.encode())


def _staff_key(settings: KefuSettings) -> bytes:
    admin = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    secret = settings.token_secret.get_secret_value() if settings.token_secret is not None else None
    return auth.signing_key(secret, admin)


def staff_key(request: Request) -> bytes:
    return _staff_key(request.app.state.runtime.settings)


async def require_staff(request: Request, credentials: Credentials) -> auth.Principal:
    """Any staff member: an agent's, supervisor's or admin's token not revoked since it was
    issued, or the configured admin token."""
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    token = _bearer(credentials)
    if settings.admin_token is not None and _matches(token, settings.admin_token.get_secret_value()):
        return auth.ADMIN
    if token.count(".") != 2:  # not a JWT (e.g. an adapter key): no need to parse
        raise ApiError(401, "unauthorized", "invalid token")
    try:
        principal = auth.verify(_staff_key(settings), token)
    except auth.TokenRefused as refused:
        raise ApiError(401, "unauthorized", refused.detail) from None
    if auth.revoked(principal, not_before=await revoked_before(runtime, principal.subject)):
        raise ApiError(401, "unauthorized", "token revoked")
    return principal


async def revoked_before(runtime: Runtime, subject: str) -> float | None:
    """The subject's revocation time (tokens issued earlier are void), read fresh on every call so
    that a revocation holds at once in every service. Unreadable: the call is refused (503)."""
    try:
        if runtime.revocations is None:
            raise RuntimeError("revocations bucket not open")
        entry = await runtime.revocations.get(subject)
    except nats.js.errors.KeyNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - fail closed: no check, no access
        log.warning("revocation check failed", extra={"error": repr(exc)})
        raise ApiError(503, "auth_unavailable", "cannot check the token now; retry") from None
    return float(json.loads(entry.value)["not_before"]) if entry.value else None


async def revoke(runtime: Runtime, subject: str, *, reason: str, now: datetime) -> float:
    """Void every token `subject` holds now (routing: its NATS user alone may write the bucket)."""
    assert runtime.revocations is not None
    not_before = round(now.timestamp(), 3) + 0.001
    await runtime.revocations.put(subject, json.dumps({"not_before": not_before, "reason": reason}).encode())
    return not_before


async def require_supervisor(request: Request, credentials: Credentials) -> auth.Principal:
    principal = await require_staff(request, credentials)
    if not auth.is_supervisor(principal):
        raise ApiError(403, "forbidden", "supervisors and admins only")
    return principal


async def require_admin(request: Request, credentials: Credentials) -> auth.Principal:
    principal = await require_staff(request, credentials)
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "admins only")
    return principal


def require_adapter(request: Request, credentials: Credentials) -> str:
    """Adapter key (or the admin token). Returns the adapter's name."""
    settings: KefuSettings = request.app.state.runtime.settings
    token = _bearer(credentials)
    for key, name in settings.adapter_key_map().items():
        if _matches(token, key):
            return name
    if settings.admin_token is not None and _matches(token, settings.admin_token.get_secret_value()):
        return "admin"
    raise ApiError(401, "unauthorized", "invalid adapter key")


async def audit(request: Request, principal: auth.Principal, action: str, object_id: str) -> None:
    """Record that `principal` read `object_id` (on KEFU_AUDIT) before the data is returned.
    A read that cannot be recorded is not served."""
    runtime: Runtime = request.app.state.runtime
    record = AuditRecord(actor=principal.subject, role=principal.role, action=action, object_id=object_id,
                         service=runtime.settings.service_name, path=request.url.path)
    assert runtime.publisher is not None
    try:
        await runtime.publisher.model(s.audit_subject(action), record, msg_id=record.event_id, stream=s.STREAM_AUDIT)
    except Exception:  # noqa: BLE001 - whatever failed, the read is refused unrecorded
        log.warning("audit record not stored", extra={"action": action})
        raise ApiError(503, "audit_unavailable", "the read could not be recorded; try again") from None


Staff = Annotated[auth.Principal, Depends(require_staff)]


Supervisor = Annotated[auth.Principal, Depends(require_supervisor)]


Admin = Annotated[auth.Principal, Depends(require_admin)]


Adapter = Annotated[str, Depends(require_adapter)]


def check_credentials(settings: KefuSettings) -> None:
    if settings.admin_token is None or not settings.admin_token.get_secret_value():
        raise SystemExit(
            "KEFU_ADMIN_TOKEN is not set: kefu's HTTP APIs always require credentials "
            "(`make run` generates them into var/dev-credentials.json)"
        )
