"""Durable timers on NATS server-side message schedules (one stream per service, KEFU_TIMERS_<SERVICE>, nats-server >= 2.12).

A service schedules `kefu.timers.schedule.<service>.<key>.<name>`; at the time, the server publishes
the body to `kefu.timers.fire.<service>.<key>.<name>`, which the service consumes with a durable
consumer. Timers live in the server: one that comes due while no process of the service runs is
handled when one starts, and by one replica only. Re-scheduling the same (key, name) replaces the
timer; `cancel` removes it. Handlers must check that a fired timer still applies.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from pydantic_core import to_json

from ..contract import subjects as s
from .publish import Publisher


def fire_filter(service: str) -> str:
    return f"{s.TIMERS_FIRE_PREFIX}.{service}.>"


def _subjects(service: str, key: str, name: str) -> tuple[str, str]:
    suffix = f"{service}.{key}.{name}"
    return f"{s.TIMERS_SCHEDULE_PREFIX}.{suffix}", f"{s.TIMERS_FIRE_PREFIX}.{suffix}"


async def _publish_schedule(publisher: Publisher, *, service: str, key: str, name: str, spec: str,
                            body: BaseModel, **headers: str) -> None:
    schedule_subject, fire_subject = _subjects(service, key, name)
    await publisher.raw(
        schedule_subject,
        to_json(body),
        msg_id=f"timer:{service}:{key}:{name}:{spec}:{'/'.join(headers.values())}",
        stream=s.timers_stream(service),
        headers={"Nats-Schedule": spec, "Nats-Schedule-Target": fire_subject, **headers},
    )


async def schedule(publisher: Publisher, *, service: str, key: str, name: str, at: datetime,
                   body: BaseModel) -> None:
    """`body`: what the timer carries, as the model its handler is given when it fires."""
    when = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    await _publish_schedule(publisher, service=service, key=key, name=name, spec=f"@at {when}", body=body)


async def cancel(publisher: Publisher, *, service: str, key: str, name: str) -> None:
    await publisher.js.purge_stream(s.timers_stream(service), subject=_subjects(service, key, name)[0])


def fired_subject(service: str, key: str, name: str) -> str:
    return _subjects(service, key, name)[1]


async def schedule_cron(publisher: Publisher, *, service: str, key: str, name: str, cron: str, timezone: str,
                        body: BaseModel) -> None:
    """A repeating timer (6-field cron: sec min hour day month weekday) in a time zone."""
    await _publish_schedule(publisher, service=service, key=key, name=name, spec=cron, body=body,
                            **{"Nats-Schedule-Time-Zone": timezone})
