"""Staff access: bearer tokens with roles, and the object-level rules every API applies.

Pure: no web framework, no broker. A staff token is a JWT (HS256, PyJWT) that routing issues to an
agent, a supervisor or a named admin; every service verifies it with the same key, so no service
asks another who a caller is. The key is `KEFU_TOKEN_SECRET`, or derived from the admin token when
that is not set (one secret less for `make run`; deployments set their own to rotate separately).

Roles:
- agent: requests of their own department (lead or co-handling) or held by them;
- supervisor: requests and queues of their departments, reports;
- admin: everything, including agents, customers, tokens and configuration. The configured admin
  token is an admin principal called `admin`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Role = Literal["agent", "supervisor", "admin"]
ISSUER = "kefu"
AUDIENCE = "kefu-staff"
SUBJECT_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Principal(BaseModel):
    """Who is calling: from a staff token, or the configured admin token."""

    model_config = ConfigDict(frozen=True)
    subject: str = Field(pattern=SUBJECT_PATTERN)
    role: Role
    departments: frozenset[str] = frozenset()
    issued_at: float = Field(0.0, description="The token's `iat` (seconds, ms precision): for revocation.")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


ADMIN = Principal(subject="admin", role="admin")


class TokenRefused(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@functools.lru_cache(maxsize=8)  # asked on every staff request; the secrets change only with a restart
def signing_key(token_secret: str | None, admin_token: str) -> bytes:
    if token_secret:
        return token_secret.encode()
    return hmac.new(admin_token.encode(), b"kefu staff tokens v1", hashlib.sha256).digest()


def issue(key: bytes, principal: Principal, *, now: datetime, ttl: timedelta) -> tuple[str, datetime]:
    expires = now + ttl
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal.subject,
        "role": principal.role,
        "depts": sorted(principal.departments),
        "iat": round(now.timestamp(), 3),  # a NumericDate may have a fraction: revocation is to the ms
        "exp": int(expires.timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, key, algorithm="HS256"), expires


def verify(key: bytes, token: str) -> Principal:
    """The principal a token names, or TokenRefused (bad signature, expired, malformed)."""
    try:
        claims = jwt.decode(
            token, key, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER, leeway=30,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("token expired") from None
    except jwt.InvalidTokenError:
        raise TokenRefused("invalid token") from None
    try:
        return Principal(subject=claims["sub"], role=claims.get("role"), departments=frozenset(claims.get("depts", [])),
                         issued_at=float(claims["iat"]))
    except (ValidationError, TypeError):
        raise TokenRefused("invalid token") from None


def revoked(p: Principal, *, not_before: float | None) -> bool:
    """A token issued before its subject's revocation time (an agent deleted, moved to another
    department or given another role; an admin revoking a person's tokens) no longer works."""
    return not_before is not None and p.issued_at < not_before


# -- object-level rules (OWASP API1): every id a caller names is checked against these --------------

def may_read_request(p: Principal, *, department: str | None, co_departments: Iterable[str] = (),
                     agent_id: str | None = None) -> bool:
    """Read: admin; the agent it is assigned/offered to; staff of its lead or co-handling departments."""
    if p.is_admin:
        return True
    if p.role == "agent" and agent_id is not None and agent_id == p.subject:
        return True
    return department in p.departments or any(d in p.departments for d in co_departments)


def may_act_on_request(p: Principal, *, department: str | None, agent_id: str | None = None) -> bool:
    """Act (accept, note, transfer, resolve ...): admin; the agent holding it; staff of its lead department."""
    if p.is_admin:
        return True
    if p.role == "agent" and agent_id is not None and agent_id == p.subject:
        return True
    return department in p.departments


def may_see_queue(p: Principal, *, queue: str, department: str | None, agent_queues: Iterable[str] = ()) -> bool:
    """A queue: admin; staff of the queue's department; an agent who serves it (e.g. the VIP queue)."""
    if p.is_admin or (department is not None and department in p.departments):
        return True
    return p.role == "agent" and queue in agent_queues


def may_see_agent(p: Principal, *, agent_id: str, department: str) -> bool:
    return p.is_admin or p.subject == agent_id or (p.role == "supervisor" and department in p.departments)


def is_supervisor(p: Principal) -> bool:
    return p.role in ("supervisor", "admin")


# -- decisions the staff APIs make (each raises Refused; the edge turns it into the HTTP answer) ----

class Refused(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def accepting_agent(p: Principal, named: str | None) -> str:
    """Who takes a request on `accept`: agents themselves; supervisors and admins name the agent."""
    if p.role == "agent":
        if named not in (None, p.subject):
            raise Refused(403, "forbidden", "agents accept for themselves")
        return p.subject
    if named is None:
        raise Refused(422, "invalid_body", "agent_id: name the agent who takes the request")
    return named


def may_assign_to(p: Principal, *, agent_department: str) -> bool:
    """A supervisor hands requests only to agents of their departments."""
    return p.role != "supervisor" or agent_department in p.departments


def may_see_department(p: Principal, department: str | None) -> bool:
    """Per-department data (drill-downs): admins, and staff of that department."""
    return p.is_admin or (department is not None and department in p.departments)


def staff_principal(*, subject: str, role: Role, requested: Iterable[str], agent_department: str | None,
                    known: Iterable[str]) -> Principal:
    """The principal a new token names: an agent's departments come from their profile
    (`agent_department`), a supervisor's are named and known, an admin has none."""
    requested = set(requested)
    if role == "agent":
        if requested:
            raise Refused(422, "invalid_body", "departments: an agent's come from their profile")
        departments = {agent_department} if agent_department else set()
    elif role == "supervisor":
        unknown = sorted(requested - set(known))
        if not requested or unknown:
            raise Refused(422, "invalid_body", f"departments: name known departments (unknown: {unknown})")
        departments = requested
    else:
        if requested:
            raise Refused(422, "invalid_body", "departments: admins have none")
        departments = set()
    return Principal(subject=subject, role=role, departments=frozenset(departments))
