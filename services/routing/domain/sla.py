"""SLA policies and deadline clocks. Pure: policies from config, `now` passed in, clocks injected.

A request has up to three deadlines:
- `first_response`: until an agent accepts it (picks it up and contacts the customer);
- `next_response`: while it is open after acceptance, the customer hears from kefu again within
  this time (reset by every progress note to the customer);
- `resolution`: until it is resolved.
Each deadline also has a warning time at `warning_share` of its target. While the request is
pending on the customer every open deadline is paused; on resume each keeps the business time it
had left.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.calendar import BusinessHoursConfig, Clock, ContinuousClock, parse_duration
from shared.contract.enums import Category, Priority, Tier
from shared.contract.models import Timestamp

DeadlineName = Literal["first_response", "next_response", "resolution"]
DEADLINES: tuple[DeadlineName, ...] = ("first_response", "next_response", "resolution")


class PolicyMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: Priority | None = None
    tier: Tier | None = None
    category: Category | None = None

    def matches(self, priority: Priority, tier: Tier, category: Category) -> bool:
        return (
            (self.priority is None or self.priority == priority)
            and (self.tier is None or self.tier == tier)
            and (self.category is None or self.category == category)
        )


class SlaPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    match: PolicyMatch = Field(default_factory=PolicyMatch)
    clock: Literal["business", "24x7"] = "business"
    first_response: str
    next_response: str | None = None
    resolution: str


class SlaConfig(BaseModel):
    """config/sla.yaml"""

    model_config = ConfigDict(extra="forbid")
    business_hours: BusinessHoursConfig = Field(default_factory=BusinessHoursConfig)
    warning_share: float = Field(0.75, gt=0, lt=1)
    breach_notice_extension: str = "1wd"
    policies: list[SlaPolicy] = Field(min_length=1)

    @property
    def workday(self) -> timedelta:
        return self.business_hours.workday

    def model_post_init(self, _: object) -> None:
        for policy in self.policies:  # fail at start-up, not at the first request
            for value in (policy.first_response, policy.next_response, policy.resolution):
                if value is not None:
                    parse_duration(value, self.workday)
        if not any(p.match == PolicyMatch() for p in self.policies):
            raise ValueError("the last policy must match everything (an empty `match`)")

    def select(self, *, priority: Priority, tier: Tier, category: Category) -> SlaPolicy:
        return next(p for p in self.policies if p.match.matches(priority, tier, category))

    def clock(self, policy: SlaPolicy) -> Clock:
        if policy.clock == "24x7":
            return ContinuousClock()
        return self.business_hours.clock()

    def target(self, policy: SlaPolicy, name: DeadlineName) -> timedelta | None:
        value = getattr(policy, name)
        return parse_duration(value, self.workday) if value is not None else None


class Deadline(BaseModel):
    target: timedelta
    due: Timestamp
    warn_at: Timestamp
    warned: bool = False
    breached: bool = False
    met_at: Timestamp | None = None
    remaining: timedelta | None = None  # business time left, while paused

    @property
    def open(self) -> bool:
        return self.met_at is None


class SlaState(BaseModel):
    policy: str
    clock: Literal["business", "24x7"]
    paused_since: Timestamp | None = None
    deadlines: dict[DeadlineName, Deadline] = Field(default_factory=dict)


def _deadline(clock: Clock, start: datetime, target: timedelta, share: float) -> Deadline:
    return Deadline(target=target, due=clock.add(start, target), warn_at=clock.add(start, target * share))


def start_sla(*, config: SlaConfig, policy: SlaPolicy, received_at: datetime) -> SlaState:
    clock = config.clock(policy)
    state = SlaState(policy=policy.name, clock=policy.clock)
    for name in ("first_response", "resolution"):
        target = config.target(policy, name)
        assert target is not None
        state.deadlines[name] = _deadline(clock, received_at, target, config.warning_share)
    return state


def meet(state: SlaState, name: DeadlineName, at: datetime) -> SlaState:
    d = state.deadlines.get(name)
    if d is None or not d.open:
        return state
    return state.model_copy(update={"deadlines": {**state.deadlines, name: d.model_copy(update={"met_at": at})}})


def restart_next_response(*, state: SlaState, config: SlaConfig, policy: SlaPolicy, at: datetime) -> SlaState:
    """After acceptance and after every update to the customer: the next update is due again."""
    target = config.target(policy, "next_response")
    if target is None or state.paused_since is not None:
        return state
    d = _deadline(config.clock(policy), at, target, config.warning_share)
    return state.model_copy(update={"deadlines": {**state.deadlines, "next_response": d}})


def pause(state: SlaState, *, config: SlaConfig, policy: SlaPolicy, at: datetime) -> SlaState:
    if state.paused_since is not None:
        return state
    clock = config.clock(policy)
    deadlines = {
        name: d.model_copy(update={"remaining": clock.between(at, d.due)}) if d.open else d
        for name, d in state.deadlines.items()
    }
    return state.model_copy(update={"paused_since": at, "deadlines": deadlines})


def resume(state: SlaState, *, config: SlaConfig, policy: SlaPolicy, at: datetime) -> SlaState:
    if state.paused_since is None:
        return state
    clock = config.clock(policy)
    deadlines = {}
    for name, d in state.deadlines.items():
        if d.open and d.remaining is not None:
            before_warning = d.remaining - d.target * (1 - config.warning_share)
            d = d.model_copy(update={
                "due": clock.add(at, d.remaining),
                "warn_at": clock.add(at, max(before_warning, timedelta(0))),
                "remaining": None,
            })
        deadlines[name] = d
    return state.model_copy(update={"paused_since": None, "deadlines": deadlines})


def mark(state: SlaState, name: DeadlineName, *, warned: bool = False, breached: bool = False) -> SlaState:
    d = state.deadlines[name]
    update = {"warned": d.warned or warned, "breached": d.breached or breached}
    return state.model_copy(update={"deadlines": {**state.deadlines, name: d.model_copy(update=update)}})
