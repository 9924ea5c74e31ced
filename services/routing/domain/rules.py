"""The routing configuration as models: classification rules, departments, SLA targets.

Loaded from `config/*.yaml` at start-up; ops change behaviour there, not in Python.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from shared.calendar import parse_duration
from shared.config import At, ConfigError, line_of, load_yaml_model
from shared.contract.enums import Category

from .sla import SlaConfig

_ASCII_WORD = re.compile(r"^[\x00-\x7f]+$")


def compile_phrases(phrases: list[str]) -> re.Pattern[str] | None:
    """One regex for a phrase list. ASCII phrases match whole words ("fire" not in "firewall");
    Chinese phrases match anywhere (Chinese has no spaces between words). Case-insensitive: the
    phrases are lowered here and `PhraseRule.matches` is given lowered text."""
    parts = []
    for phrase in phrases:
        p = phrase.strip().lower()
        if not p:
            continue
        escaped = re.escape(p).replace(r"\ ", r"\s+")
        parts.append(rf"(?<![a-z0-9]){escaped}(?![a-z0-9])" if _ASCII_WORD.match(p) else escaped)
    # callers match lowered text (phrases are lowered here): no IGNORECASE, which costs on Unicode
    return re.compile("|".join(parts)) if parts else None


class PhraseRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    phrases: list[str] = Field(min_length=1)
    # phrases that contain a trigger word but mean something harmless: removed before matching
    # ("fire extinguisher", "gas leak detector")
    unless: list[str] = Field(default_factory=list)
    weight: float = 1.0

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        return compile_phrases(self.phrases)

    @cached_property
    def unless_pattern(self) -> re.Pattern[str] | None:
        return compile_phrases(self.unless)

    @cached_property
    def needles(self) -> tuple[str, ...]:
        """A literal piece of each phrase that any match contains (its longest word): most rules
        miss most texts, and a substring test rules them out far faster than the regex would."""
        return tuple(max(p.lower().split(), key=len) for p in self.phrases if p.strip())

    def matches(self, text: str, present: frozenset[str] | None = None) -> bool:
        """`present`: the needles of the whole rule set found in `text` (`RuleSet.present`), when the
        caller asks many rules about one text: each needle is then looked for once, not per rule."""
        if present is not None:
            if present.isdisjoint(self.needles):
                return False
        elif not any(needle in text for needle in self.needles):
            return False  # removing the `unless` phrases could only take matches away
        if self.unless_pattern is not None:
            text = self.unless_pattern.sub(" ", text)
        return self.pattern is not None and self.pattern.search(text) is not None


class CategoryRule(PhraseRule):
    category: Category


class TopicRule(PhraseRule):
    topic: str


class RuleSet(BaseModel):
    """config/rules.yaml"""

    model_config = ConfigDict(extra="forbid")

    emergency: list[PhraseRule]
    categories: list[CategoryRule]
    hint_weight: float = Field(1.0, description="What an adapter's category hint adds to that category's score.")
    default_category: Category = Category.inquiry
    important: list[PhraseRule] = Field(default_factory=list)
    complex: list[PhraseRule] = Field(default_factory=list)
    topics: list[TopicRule]

    @cached_property
    def needles(self) -> tuple[str, ...]:
        """Every rule's needles, each once (rules share many words)."""
        rules = [*self.emergency, *self.categories, *self.important, *self.complex, *self.topics]
        return tuple(dict.fromkeys(needle for rule in rules for needle in rule.needles))

    def present(self, lowered: str) -> frozenset[str]:
        """The needles found in the text: one substring test each, for all rules at once."""
        return frozenset([needle for needle in self.needles if needle in lowered])


class Responsibility(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead: str
    co: list[str] = Field(default_factory=list)


class Departments(BaseModel):
    """config/departments.yaml"""

    model_config = ConfigDict(extra="forbid")

    # a department names NATS subjects (kefu.outbound.supervisor.<department>) and queues: one token
    departments: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]]
    responsibility: dict[str, Responsibility]
    default_topic: dict[Category, str]
    emergency_co: list[str] = Field(default_factory=list)
    vip_queue: str = "vip"

    @model_validator(mode="after")
    def _known(self) -> Departments:
        known = set(self.departments)
        for topic, r in self.responsibility.items():
            if r.lead not in known:
                raise At(("responsibility", topic, "lead"), f"unknown department {r.lead!r} (departments: line 2)")
            for i, dept in enumerate(r.co):
                if dept not in known:
                    raise At(("responsibility", topic, "co", i), f"unknown department {dept!r}")
        for i, dept in enumerate(self.emergency_co):
            if dept not in known:
                raise At(("emergency_co", i), f"unknown department {dept!r}")
        for category, topic in self.default_topic.items():
            if topic not in self.responsibility:
                raise At(("default_topic", category.value), f"unknown topic {topic!r}")
        return self


class Tuning(BaseModel):
    """config/routing.yaml"""

    model_config = ConfigDict(extra="forbid")
    offer_timeout: str = "120s"
    max_offers: int = Field(2, ge=1)
    dispatch_interval: str = "5s"
    skills_by_topic: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("offer_timeout", "dispatch_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value, timedelta(hours=8))  # raises with the forms it takes
        return value


class RoutingConfig(BaseModel):
    rules: RuleSet
    departments: Departments
    sla: SlaConfig
    tuning: Tuning

    @classmethod
    def load(cls, config_dir: Path) -> RoutingConfig:
        """All of routing's files, each validated (ConfigError names file and line), then the
        checks across them (a topic in rules.yaml needs a responsibility in departments.yaml)."""
        problems: list[str] = []
        loaded: dict[str, Any] = {}
        for name, file, model in (("rules", "rules.yaml", RuleSet), ("departments", "departments.yaml", Departments),
                                  ("sla", "sla.yaml", SlaConfig), ("tuning", "routing.yaml", Tuning)):
            try:
                loaded[name] = load_yaml_model(config_dir / file, model)
            except ConfigError as exc:
                problems.append(str(exc))
        if not problems:
            for i, topic in enumerate(loaded["rules"].topics):
                if topic.topic not in loaded["departments"].responsibility:
                    problems.append(f"{line_of(config_dir / 'rules.yaml', ('topics', i, 'topic'))}: topics.{i}.topic: "
                                    f"{topic.topic!r} has no responsibility in departments.yaml")
        if problems:
            raise ConfigError("\n".join(problems))
        return cls(**loaded)

    def duration(self, text: str) -> timedelta:
        return parse_duration(text, self.sla.workday)
