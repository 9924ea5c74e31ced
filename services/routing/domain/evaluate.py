"""How well a rule set judges labelled requests: category and priority accuracy, emergency recall
and precision, false alarms on near-misses, per language and channel. Pure: rows in, figures out.

Used by the tests (tuning and held-out sets, tests/data/README.md) and by `kefu policy evaluate`,
which ops run on their own labelled rows (for instance `kefu corrections export`) before a
candidate rules.yaml is loaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel, Field

from shared.contract.enums import Category, Priority, Tier
from shared.contract.models import Hints

from .classify import Judgement, judge
from .rules import RuleSet


class Labelled(BaseModel):
    """One labelled request (a row of tests/data/*.jsonl or of `kefu corrections export`)."""

    id: str
    text: str
    category: Category
    priority: Priority
    emergency: bool
    channel: str = ""
    language: str = ""
    near_miss: bool = False


class Miss(BaseModel):
    id: str
    field: str
    expected: str
    judged: str


class Scores(BaseModel):
    rows: int
    category_accuracy: float
    priority_accuracy: float
    emergencies: int
    emergency_recall: float = Field(description="Emergencies flagged / emergencies (1.0 when there are none).")
    emergency_precision: float = Field(description="True emergencies / flagged (1.0 when nothing is flagged).")
    near_misses: int
    near_miss_false_alarms: int
    category_accuracy_by: dict[str, float] = Field(description="Per `language:` and `channel:` value.")
    confusion: dict[str, int] = Field(description="`expected->judged` category counts of the misses.")
    misses: list[Miss]

    def summary(self) -> str:
        return (f"{self.rows} rows: category {self.category_accuracy:.3f}, priority {self.priority_accuracy:.3f}, "
                f"emergency recall {self.emergency_recall:.3f} ({self.emergencies}), precision "
                f"{self.emergency_precision:.3f}, near-miss false alarms {self.near_miss_false_alarms}/{self.near_misses}")


def _ratio(hits: int, total: int) -> float:
    return hits / total if total else 1.0


def score(rows: Iterable[Labelled], rules: RuleSet) -> Scores:
    """Every row judged as a standard customer's request with no adapter hints: the words alone."""
    judged: list[tuple[Labelled, Judgement]] = [
        (row, judge(text=row.text, hints=Hints(), tier=Tier.standard, rules=rules)) for row in rows]
    misses: list[Miss] = []
    for row, j in judged:
        for field, expected, got in (("category", row.category.value, j.category.value),
                                     ("priority", row.priority.value, j.priority.value),
                                     ("emergency", str(row.emergency).lower(), str(j.emergency).lower())):
            if expected != got:
                misses.append(Miss(id=row.id, field=field, expected=expected, judged=got))
    wrong = {(m.id, m.field) for m in misses}
    groups: dict[str, list[bool]] = {}
    for row, _ in judged:
        right = (row.id, "category") not in wrong
        for key in (f"language:{row.language}", f"channel:{row.channel}"):
            if not key.endswith(":"):
                groups.setdefault(key, []).append(right)
    emergencies = [j.emergency for row, j in judged if row.emergency]
    flagged = [row.emergency for row, j in judged if j.emergency]
    near = [j.emergency for row, j in judged if row.near_miss]
    n = len(judged)
    return Scores(
        rows=n,
        category_accuracy=_ratio(n - sum(m.field == "category" for m in misses), n),
        priority_accuracy=_ratio(n - sum(m.field == "priority" for m in misses), n),
        emergencies=len(emergencies),
        emergency_recall=_ratio(sum(emergencies), len(emergencies)),
        emergency_precision=_ratio(sum(flagged), len(flagged)),
        near_misses=len(near),
        near_miss_false_alarms=sum(near),
        category_accuracy_by={k: _ratio(sum(v), len(v)) for k, v in sorted(groups.items())},
        confusion=dict(Counter(f"{m.expected}->{m.judged}" for m in misses if m.field == "category").most_common()),
        misses=misses,
    )
