"""The classifier against a labelled set of realistic requests (tests/data/labelled_requests.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.routing.domain.classify import judge
from services.routing.domain.rules import RoutingConfig
from shared.contract.enums import Category, Tier
from shared.contract.models import Hints

DATA = Path(__file__).parents[2] / "data" / "labelled_requests.jsonl"
CONFIG = Path(__file__).parents[3] / "config"


def load() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def results() -> list[tuple[dict, object]]:
    rules = RoutingConfig.load(CONFIG).rules
    return [(row, judge(text=row["text"], hints=Hints(), tier=Tier.standard, rules=rules)) for row in load()]


def test_set_is_large_and_covers_every_category_and_channel() -> None:
    rows = load()
    assert len(rows) >= 120
    assert {r["category"] for r in rows} == {c.value for c in Category}
    assert {r["channel"] for r in rows} == {"phone", "sms", "email", "web", "wechat", "app", "walkin"}
    assert sum(r["emergency"] for r in rows) >= 12


def test_category_accuracy_is_at_least_90_percent(results) -> None:
    wrong = [(r["id"], r["category"], j.category.value, r["text"]) for r, j in results if j.category.value != r["category"]]
    accuracy = 1 - len(wrong) / len(results)
    print(f"\ncategory accuracy {accuracy:.3f} ({len(results) - len(wrong)}/{len(results)})")
    for w in wrong:
        print("  miss", *w)
    assert accuracy >= 0.9, wrong


def test_every_emergency_is_caught(results) -> None:
    missed = [(r["id"], r["text"]) for r, j in results if r["emergency"] and not j.emergency]
    assert missed == []


def test_emergency_precision(results) -> None:
    flagged = [(r, j) for r, j in results if j.emergency]
    false = [(r["id"], r["text"]) for r, j in flagged if not r["emergency"]]
    precision = 1 - len(false) / len(flagged)
    print(f"\nemergency precision {precision:.3f}; false alarms: {false}")
    assert precision >= 0.9, false


def test_emergencies_are_urgent(results) -> None:
    assert all(j.priority.value == "urgent" for _, j in results if j.emergency)


HELDOUT_BILLING = Path(__file__).parents[2] / "data" / "heldout_billing_zh.jsonl"


def test_billing_errors_written_in_chinese_are_complaints_with_money_at_stake() -> None:
    """Held out: the set was written before the billing rules and is not tuned on. The probe:
    "账单多扣了500元" was a normal inquiry while "charged 500 yuan too much" was an important complaint."""
    rules = RoutingConfig.load(CONFIG).rules
    rows = [json.loads(line) for line in HELDOUT_BILLING.read_text(encoding="utf-8").splitlines() if line.strip()]
    judged = [(r, judge(text=r["text"], hints=Hints(), tier=Tier.standard, rules=rules)) for r in rows]
    wrong = [(r["id"], r["text"], j.category.value, j.priority.value) for r, j in judged
             if (j.category.value, j.priority.value) != (r["category"], r["priority"])]
    print(f"\nheld-out billing: {len(rows) - len(wrong)}/{len(rows)}")
    assert len(rows) >= 15 and len(wrong) / len(rows) <= 0.1, wrong
