"""A policy dry-run, pure: recorded requests judged and timed again under a candidate configuration
(rules, departments, SLA policies), compared with what was decided when they arrived and measured
against what really happened to them (when each was accepted and resolved). No side effects: no
record, no message, no event; the same inputs give the same report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field

from shared.contract.models import RequestAssigned, RequestCorrected, RequestReceived

from .assign import assignment
from .classify import judge
from .rules import RoutingConfig
from .sla import start_sla

EXAMPLES = 5  # changed requests shown per field
FIELDS = ("category", "priority", "emergency", "department")


@dataclass
class Recorded:
    """One request as the event log has it."""

    received: RequestReceived
    assigned: RequestAssigned | None = None
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None
    corrections: list[RequestCorrected] = field(default_factory=list)

    def corrected(self) -> dict[str, tuple[str, str]]:
        """Each field agents corrected: (what routing judged, what they said last)."""
        found: dict[str, tuple[str, str]] = {}
        for correction in sorted(self.corrections, key=lambda c: c.occurred_at):
            for change in correction.changes:
                found[change.field] = (found.get(change.field, (change.old, ""))[0], change.new)
        return found


class Change(BaseModel):
    request_id: str
    before: str
    after: str


class FieldChanges(BaseModel):
    changed: int = 0
    transitions: dict[str, int] = Field(default_factory=dict, description="`before -> after`: how many.")
    examples: list[Change] = Field(default_factory=list)


class Attainment(BaseModel):
    """Of the requests whose deadline can be judged (accepted or resolved, or still open past it):
    how many met it, as recorded and under the candidate policy."""

    judged: int = 0
    met_recorded: int = 0
    met_candidate: int = 0

    @property
    def recorded_ratio(self) -> float | None:
        return self.met_recorded / self.judged if self.judged else None

    @property
    def candidate_ratio(self) -> float | None:
        return self.met_candidate / self.judged if self.judged else None


class Agreement(BaseModel):
    """Of the requests agents corrected in a field: how many the candidate decides as they did (the
    recorded decision agreed with none of them, or they would not have been corrected)."""

    corrected: int = 0
    candidate_agrees: int = 0


class Report(BaseModel):
    requests: int = 0
    without_decision: int = Field(0, description="Received, but no request.assigned in the log (not compared).")
    changes: dict[str, FieldChanges] = Field(default_factory=lambda: {f: FieldChanges() for f in FIELDS})
    attainment: dict[str, Attainment] = Field(default_factory=lambda: {d: Attainment() for d in ("first_response",
                                                                                                  "resolution")})
    volumes: dict[str, dict[str, int]] = Field(default_factory=dict,
                                               description="Lead department -> requests {recorded, candidate}.")
    corrections: dict[str, Agreement] = Field(
        default_factory=lambda: {f: Agreement() for f in ("category", "priority", "department")},
        description="Agents' corrections in the period (the last value per field) against the candidate.")


@dataclass
class _Tally:
    report: Report = field(default_factory=Report)
    recorded_volume: Counter[str] = field(default_factory=Counter)
    candidate_volume: Counter[str] = field(default_factory=Counter)


def decide(request: RequestReceived, *, config: RoutingConfig) -> RequestAssigned:
    """What the candidate configuration decides for a request, at the time it was received."""
    judgement = judge(text=f"{request.subject or ''}\n{request.body}", hints=request.hints,
                      tier=request.customer.tier, rules=config.rules)
    policy = config.sla.select(priority=judgement.priority, tier=request.customer.tier, category=judgement.category)
    sla = start_sla(config=config.sla, policy=policy, received_at=request.received_at)
    return assignment(request=request, judgement=judgement, table=config.departments, sla=sla, now=request.received_at)


def _met(done: datetime | None, due: datetime, until: datetime) -> bool | None:
    """Met (done by the deadline), missed (done later, or still open past it at `until`), or not
    yet known (still open, deadline ahead)."""
    if done is not None:
        return done <= due
    return False if until > due else None


def dry_run(recorded: Iterable[Recorded], *, candidate: RoutingConfig, until: datetime) -> Report:
    """Every recorded request with its recorded decision, against the candidate's decision."""
    tally = _Tally()
    report = tally.report
    for r in recorded:
        report.requests += 1
        if r.assigned is None:
            report.without_decision += 1
            continue
        after = decide(r.received, config=candidate)
        before = r.assigned
        for name, old, new in (("category", before.category.value, after.category.value),
                               ("priority", before.priority.value, after.priority.value),
                               ("emergency", str(before.emergency).lower(), str(after.emergency).lower()),
                               ("department", before.department, after.department)):
            if old != new:
                changes = report.changes[name]
                changes.changed += 1
                key = f"{old} -> {new}"
                changes.transitions[key] = changes.transitions.get(key, 0) + 1
                if len(changes.examples) < EXAMPLES:
                    changes.examples.append(Change(request_id=r.received.request_id, before=old, after=new))
        decided = {"category": after.category.value, "priority": after.priority.value, "department": after.department}
        for name, (_, label) in r.corrected().items():
            agreement = report.corrections[name]
            agreement.corrected += 1
            agreement.candidate_agrees += decided[name] == label
        tally.recorded_volume[before.department] += 1
        tally.candidate_volume[after.department] += 1
        for name, done in (("first_response", r.accepted_at), ("resolution", r.resolved_at)):
            then = _met(done, getattr(before.due, name), until)
            now = _met(done, getattr(after.due, name), until)
            if then is None or now is None:
                continue
            a = report.attainment[name]
            a.judged += 1
            a.met_recorded += then
            a.met_candidate += now
    for department in sorted(set(tally.recorded_volume) | set(tally.candidate_volume)):
        report.volumes[department] = {"recorded": tally.recorded_volume[department],
                                      "candidate": tally.candidate_volume[department]}
    return report


def table(report: Report) -> str:
    """The report for a terminal."""
    lines = [f"requests replayed: {report.requests} ({report.without_decision} without a recorded decision)", "",
             f"{'field':<12} {'changed':>8}  most common"]
    for name, c in report.changes.items():
        common = ", ".join(f"{k} ({v})" for k, v in sorted(c.transitions.items(), key=lambda kv: -kv[1])[:3])
        lines.append(f"{name:<12} {c.changed:>8}  {common or '-'}")
    lines += ["", f"{'deadline':<15} {'judged':>7} {'recorded':>9} {'candidate':>10}"]
    for name, a in report.attainment.items():
        def pct(x: float | None) -> str:
            return f"{x:.1%}" if x is not None else "-"
        lines.append(f"{name:<15} {a.judged:>7} {pct(a.recorded_ratio):>9} {pct(a.candidate_ratio):>10}")
    lines += ["", "agents' corrections the candidate would have made itself: " + ", ".join(
        f"{name} {a.candidate_agrees}/{a.corrected}" for name, a in report.corrections.items())]
    lines += ["", f"{'department':<18} {'recorded':>9} {'candidate':>10}"]
    lines += [f"{d:<18} {v['recorded']:>9} {v['candidate']:>10}" for d, v in report.volumes.items()]
    return "\n".join(lines)
