"""What an operator does by hand, as `kefu` commands: see a rejected payload, replay it, find a
request's survey link, list the dead letters. Thin: the HTTP ones call the services' admin APIs
(so the reads are authorised and audited like any other), the dead letters are read from NATS.

Where to reach kefu: `KEFU_INTAKE_URL` / `KEFU_FEEDBACK_URL` (default: 127.0.0.1 and the service's
`KEFU_<SERVICE>_HTTP_PORT`), the admin token from `KEFU_ADMIN_TOKEN` or, for `make run`, from
`var/dev-credentials.json` (`KEFU_VAR_DIR`); NATS as every service connects (`KEFU_NATS_*`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

PORTS = {"intake": 8081, "routing": 8082, "feedback": 8083, "metrics": 8084, "console": 8085, "gateway": 8086}


class OpsError(Exception):
    """A command that cannot be done, with what to do about it."""


def service_url(service: str) -> str:
    explicit = os.environ.get(f"KEFU_{service.upper()}_URL")
    if explicit:
        return explicit.rstrip("/")
    port = os.environ.get(f"KEFU_{service.upper()}_HTTP_PORT", str(PORTS[service]))
    return f"http://127.0.0.1:{port}"


def admin_token() -> str:
    token = os.environ.get("KEFU_ADMIN_TOKEN")
    if token:
        return token
    creds = Path(os.environ.get("KEFU_VAR_DIR", "var")) / "dev-credentials.json"
    try:
        return str(json.loads(creds.read_text())["admin_token"])
    except (OSError, ValueError, KeyError):
        raise OpsError(f"no admin token: set KEFU_ADMIN_TOKEN (or run from the directory of `make run`, "
                       f"which keeps one in {creds})") from None


def call(service: str, method: str, path: str) -> httpx.Response:
    url = service_url(service)
    try:
        response = httpx.request(method, url + path, headers={"Authorization": f"Bearer {admin_token()}"},
                                 timeout=30)
    except httpx.TransportError as exc:
        raise OpsError(f"cannot reach {service} at {url} ({exc.__class__.__name__}): is kefu running? "
                       f"Set KEFU_{service.upper()}_URL to where it listens") from None
    if response.status_code >= 400:
        try:
            body = response.json()
            reason = f"{body['error']}: {body['detail']}"
        except (ValueError, KeyError, TypeError):
            reason = response.text[:200]
        raise OpsError(f"{service} answered {response.status_code}: {reason}")
    return response


def rejected_show(ref: str, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
    """The kept raw bytes on stdout (redirect them to a file), why and when on stderr."""
    response = call("intake", "GET", f"/v1/rejected/{ref}")
    for name, value in sorted(response.headers.items()):
        if name.lower().startswith("kefu-"):
            print(f"{name.title()}: {value}", file=err)
    out.buffer.write(response.content) if hasattr(out, "buffer") else out.write(response.text)
    out.flush()


def rejected_replay(ref: str, out: TextIO = sys.stdout) -> None:
    body = call("intake", "POST", f"/v1/rejected/{ref}/replay").json()
    print(f"replayed into kefu.intake.{body['channel']}", file=out)


def survey_link(request_id: str, out: TextIO = sys.stdout) -> None:
    body = call("feedback", "GET", f"/v1/requests/{request_id}/surveys").json()
    if not body["surveys"]:
        raise OpsError(f"{request_id} has no survey (its channel is not surveyed, or none was sent yet)")
    for survey in body["surveys"]:
        print(f"{survey['link']}  ({survey['status']}, expires {survey['expires_at']})", file=out)


async def _dead_letters(limit: int) -> list[dict[str, Any]]:
    import nats
    import nats.js.errors

    from .contract import subjects as s
    from .nats.topology import connect_kwargs
    from .settings import KefuSettings

    settings = KefuSettings(service_name="ops")
    try:
        nc = await nats.connect(**connect_kwargs(settings) | {"max_reconnect_attempts": 0, "connect_timeout": 5})
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the same advice
        raise OpsError(f"cannot reach NATS at {settings.nats_url} ({exc.__class__.__name__}): set KEFU_NATS_URL "
                       "and, on a deployment, the admin user's KEFU_NATS_USER / KEFU_NATS_PASSWORD") from None
    try:
        js = nc.jetstream()
        state = (await js.stream_info(s.STREAM_DLQ)).state
        letters: list[dict[str, Any]] = []
        seq = state.last_seq
        while seq >= max(state.first_seq, 1) and len(letters) < limit:
            try:
                msg = await js.get_msg(s.STREAM_DLQ, seq)
            except nats.js.errors.NotFoundError:
                seq -= 1
                continue
            headers = msg.headers or {}
            letters.append({"seq": seq, "at": msg.time.isoformat() if msg.time else None, "subject": msg.subject,
                            "consumer": headers.get("Kefu-Dlq-Consumer"), "reason": headers.get("Kefu-Dlq-Reason"),
                            "original": f"{headers.get('Kefu-Original-Stream', '')}#"
                                        f"{headers.get('Kefu-Original-Seq', '')}",
                            "deliveries": headers.get("Kefu-Deliveries")})
            seq -= 1
        return letters
    finally:
        await nc.close()


def dlq_list(limit: int, out: TextIO = sys.stdout) -> None:
    """The newest dead letters: when, which consumer gave up, why, and where the original is."""
    letters = asyncio.run(_dead_letters(limit))
    if not letters:
        print("no dead letters", file=out)
    for letter in letters:
        print(json.dumps(letter, ensure_ascii=False), file=out)
