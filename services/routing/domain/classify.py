"""Initial judgement (初步判断): category, priority, emergency, topic, from the text and the hints."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.contract.enums import Category, Priority, Tier
from shared.contract.models import Hints

from .rules import RuleSet


class Judgement(BaseModel):
    category: Category
    priority: Priority
    emergency: bool
    complex: bool
    topics: list[str] = Field(description="Natures of the problem found, most responsible first.")
    matched_rules: list[str]


def judge(*, text: str, hints: Hints, tier: Tier, rules: RuleSet) -> Judgement:
    """Rules in config decide; adapters' hints weigh in but never overrule clear words.

    - emergency: any emergency rule matches -> urgent, emergency;
    - category: each matching category rule adds its weight; an adapter hint adds `hint_weight`;
      the highest score wins (ties: the order of categories in the file); nothing -> default;
    - priority: urgent for emergencies; important when an `important` rule matches, for VIP
      customers' complaints, or when the adapter said urgent/important; else normal.
    """
    lowered = text.lower()
    present = rules.present(lowered)
    matched: list[str] = []

    emergency_rules = [r.name for r in rules.emergency if r.matches(lowered, present)]
    matched += [f"emergency:{n}" for n in emergency_rules]
    emergency = bool(emergency_rules)

    scores: dict[Category, float] = {}
    order: list[Category] = []
    for rule in rules.categories:
        if rule.category not in order:
            order.append(rule.category)
        if rule.matches(lowered, present):
            scores[rule.category] = scores.get(rule.category, 0.0) + rule.weight
            matched.append(f"category:{rule.name}")
    if hints.category is not None:
        scores[hints.category] = scores.get(hints.category, 0.0) + rules.hint_weight
    if scores:
        best = max(scores.values())
        category = next(c for c in [*order, *Category] if scores.get(c) == best)
    else:
        category = Category.help if emergency else rules.default_category

    important = [r.name for r in rules.important if r.matches(lowered, present)]
    matched += [f"important:{n}" for n in important]
    if emergency:
        priority = Priority.urgent
    elif important or (tier is Tier.vip and category is Category.complaint):
        priority = Priority.important
    else:
        priority = Priority.normal
    if hints.urgency is not None and not emergency and hints.urgency is not Priority.normal:
        # an adapter's "urgent" without an emergency in the words is important, not an emergency
        priority = Priority.important

    complex_ = [r.name for r in rules.complex if r.matches(lowered, present)]
    matched += [f"complex:{n}" for n in complex_]

    topics = []
    for topic_rule in rules.topics:
        if topic_rule.topic not in topics and topic_rule.matches(lowered, present):
            topics.append(topic_rule.topic)
            matched.append(f"topic:{topic_rule.name}")

    return Judgement(
        category=category,
        priority=priority,
        emergency=emergency,
        complex=bool(complex_),
        topics=topics,
        matched_rules=matched,
    )
