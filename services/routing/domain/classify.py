"""Initial judgement (初步判断): category, priority, emergency, topic, from the text and the hints."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.contract.enums import Category, Priority, Tier
from shared.contract.models import Hints

from .rules import PhraseRule, RuleSet, normalise


class Judgement(BaseModel):
    category: Category
    priority: Priority
    emergency: bool
    complex: bool
    topics: list[str] = Field(description="Natures of the problem found, most responsible first.")
    matched_rules: list[str]
    evidence: dict[str, str] = Field(default_factory=dict, description="Each matched rule: the words it found.")
    scores: dict[Category, float] = Field(default_factory=dict, description="Each category's score.")


def judge(*, text: str, hints: Hints, tier: Tier, rules: RuleSet) -> Judgement:
    """Rules in config decide; adapters' hints weigh in but never overrule clear words.

    - emergency: any emergency rule matches -> urgent, emergency;
    - category: each matching category rule adds its weight; an adapter hint adds `hint_weight`;
      the highest score wins (ties: the order of categories in the file); nothing -> default;
    - priority: urgent for emergencies; important when an `important` rule matches, for VIP
      customers' complaints, or when the adapter said urgent/important; else normal.
    """
    lowered = normalise(text)
    present = rules.present(lowered)
    evidence: dict[str, str] = {}

    def found(kind: str, rule: PhraseRule) -> bool:
        words = rule.find(lowered, present)
        if words is not None:
            evidence[f"{kind}:{rule.name}"] = words
        return words is not None

    emergency = any([found("emergency", r) for r in rules.emergency])

    scores: dict[Category, float] = {}
    order: list[Category] = []
    for rule in rules.categories:
        if rule.category not in order:
            order.append(rule.category)
        if found("category", rule):
            scores[rule.category] = scores.get(rule.category, 0.0) + rule.weight
    if hints.category is not None:
        scores[hints.category] = scores.get(hints.category, 0.0) + rules.hint_weight
    if emergency and rules.emergency_help_weight:
        scores[Category.help] = scores.get(Category.help, 0.0) + rules.emergency_help_weight
    if scores:
        best = max(scores.values())
        category = next(c for c in [*order, *Category] if scores.get(c) == best)
    else:
        category = Category.help if emergency else rules.default_category

    important = any([found("important", r) for r in rules.important])
    if emergency:
        priority = Priority.urgent
    elif important or (tier is Tier.vip and category is Category.complaint):
        priority = Priority.important
    else:
        priority = Priority.normal
    if hints.urgency is not None and not emergency and hints.urgency is not Priority.normal:
        # an adapter's "urgent" without an emergency in the words is important, not an emergency
        priority = Priority.important

    complex_ = any([found("complex", r) for r in rules.complex])

    topics = []
    for topic_rule in rules.topics:
        if topic_rule.topic not in topics and found("topic", topic_rule):
            topics.append(topic_rule.topic)

    return Judgement(
        category=category,
        priority=priority,
        emergency=emergency,
        complex=complex_,
        topics=topics,
        matched_rules=list(evidence),
        evidence=evidence,
        scores=scores,
    )
