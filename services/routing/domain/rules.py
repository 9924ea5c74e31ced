"""The routing configuration as models: classification rules, departments, SLA targets.

Loaded from `config/*.yaml` at start-up; ops change behaviour there, not in Python.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, field_validator, model_validator

from shared.calendar import parse_duration
from shared.config import At, ConfigError, line_of, load_yaml_model
from shared.contract.enums import Category

from .sla import SlaConfig

_ASCII_WORD = re.compile(r"^[\x00-\x7f]+$")
_ALNUM = re.compile(r"[a-z0-9*]")
_TOKEN = re.compile(r"(\{[A-Za-z0-9_]+\}|~)")
# a gap (`~`): a few words or characters, not across the end of a sentence
_GAP = r"[^。！？!?.\n]{0,16}?"
# the clause before a match, where a negation ("没有", "no") would apply to it
_CLAUSE_END = re.compile(r"[，,。！？!?；;:：\n]")
_NEGATION_WINDOW = 12


@functools.cache
def _to_simplified() -> Any:
    import opencc  # OpenCC's own binding: maintained character and phrase tables

    return opencc.OpenCC("tw2sp")


def normalise(text: str) -> str:
    """What rules match: full-width forms folded (NFKC), Traditional Chinese as Simplified with
    Taiwan's words (網路 -> 网络, 簡訊 -> 短信; OpenCC `tw2sp`), lower case. The request keeps
    its own text; only matching reads this."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = _to_simplified().convert(text)
    return text.lower()


def _literal(piece: str) -> str:
    return re.escape(piece).replace(r"\ ", r"\s+").replace(r"\*", "[a-z]*")


def phrase_regex(phrase: str, words: dict[str, list[str]], seen: tuple[str, ...] = ()) -> str:
    """One phrase as a regex. A phrase is literal text, `{class}` (any phrase of that word class in
    `words`) and `~` (a short gap); `*` at the end of an English word matches any ending
    ("frustrat*"). English at the phrase's edges matches whole words only ("fire" not in
    "firewall"); Chinese matches anywhere (no spaces between words)."""
    parts = [part for part in _TOKEN.split(" ".join(phrase.strip().lower().split())) if part]
    out: list[str] = []
    for i, part in enumerate(parts):
        if part == "~":
            out.append(_GAP)
        elif _TOKEN.fullmatch(part):
            name = part[1:-1]
            if name not in words:
                raise ValueError(f"unknown word class {{{name}}} (known: {', '.join(sorted(words)) or 'none'})")
            if name in seen:
                raise ValueError(f"word class {{{name}}} refers to itself")
            out.append("(?:" + "|".join(phrase_regex(w, words, (*seen, name)) for w in words[name] if w.strip()) + ")")
        else:
            before = parts[i - 1] if i else None
            after = parts[i + 1] if i + 1 < len(parts) else None
            lead = r"\s*" if before not in (None, "~") and part[0] == " " else ""
            trail = r"\s*" if after not in (None, "~") and part[-1] == " " else ""
            if part.strip():
                out.append(lead + _literal(part.strip()) + trail)
            elif lead or trail:
                out.append(r"\s*")
    first, last = (parts[0], parts[-1]) if parts else ("", "")
    head = r"(?<![a-z0-9])" if first and not _TOKEN.fullmatch(first) and _ALNUM.match(first.lstrip()[:1]) else ""
    tail = r"(?![a-z0-9])" if last and not _TOKEN.fullmatch(last) and _ALNUM.match(last.rstrip()[-1:]) else ""
    return head + "".join(out) + tail


def compile_phrases(phrases: list[str], words: dict[str, list[str]] | None = None) -> re.Pattern[str] | None:
    """One regex for a phrase list. Case-insensitive: callers give normalised (lowered) text."""
    parts = [phrase_regex(p, words or {}) for p in phrases if p.strip()]
    # no IGNORECASE, which costs on Unicode: the text is lowered by `normalise`
    return re.compile("|".join(parts)) if parts else None


def _needles(phrase: str, words: dict[str, list[str]]) -> tuple[str, ...]:
    """Literal pieces of which any match of the phrase contains at least one: its longest literal
    word, else the needles of its first word class."""
    p = phrase.strip().lower()
    literals = [w for part in _TOKEN.split(p) if not _TOKEN.fullmatch(part) for w in part.replace("*", " ").split()]
    if literals:
        return (max(literals, key=len),)
    ref = next(part[1:-1] for part in _TOKEN.split(p) if part.startswith("{"))
    return tuple(n for w in words.get(ref, []) for n in _needles(w, words))


class PhraseRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    phrases: list[str] = Field(min_length=1)
    # phrases that contain a trigger word but mean something harmless: removed before matching
    # ("fire extinguisher", "gas leak detector")
    unless: list[str] = Field(default_factory=list)
    weight: float = 1.0
    # a match right after a negation in the same clause ("没有燃气味", "no smell of gas") does not count
    negatable: bool = False
    _words: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    _negation: re.Pattern[str] | None = PrivateAttr(None)
    _not_negation: re.Pattern[str] | None = PrivateAttr(None)

    def bind(self, words: dict[str, list[str]], negations: list[str], not_negations: list[str]) -> None:
        """The rule set's word classes and negations (called once, when the set is validated)."""
        self._words = words
        self._negation = compile_phrases(negations, words)
        self._not_negation = compile_phrases(not_negations, words)
        for name in ("unless_pattern", "needles", "alternatives", "_by_needle"):
            self.__dict__.pop(name, None)

    @cached_property
    def unless_pattern(self) -> re.Pattern[str] | None:
        return compile_phrases(self.unless, self._words)

    @cached_property
    def alternatives(self) -> tuple[tuple[frozenset[str], re.Pattern[str]], ...]:
        """Each phrase (a phrase that is only `{class}` becomes the class's phrases) as its own small
        regex with its needles. One regex of hundreds of alternatives is tried alternative by
        alternative at every position of the text; these are tried only when their needle is there."""
        def flat(phrase: str, seen: tuple[str, ...] = ()) -> list[str]:
            ref = phrase.strip().lower()
            if _TOKEN.fullmatch(ref) and ref != "~" and ref[1:-1] in self._words and ref[1:-1] not in seen:
                return [q for w in self._words[ref[1:-1]] if w.strip() for q in flat(w, (*seen, ref[1:-1]))]
            return [phrase]

        phrases = dict.fromkeys(q for p in self.phrases if p.strip() for q in flat(p))
        return tuple((frozenset(_needles(q, self._words)), re.compile(phrase_regex(q, self._words))) for q in phrases)

    @cached_property
    def needles(self) -> frozenset[str]:
        """A literal piece of each phrase that any match contains: most rules miss most texts, and
        a substring test rules them out far faster than the regex would."""
        return frozenset(self._by_needle)

    @cached_property
    def _by_needle(self) -> dict[str, tuple[int, ...]]:
        """Needle -> the alternatives that contain it: a text's few needles pick the few phrases to
        try, instead of a pass over every phrase of the rule's word classes."""
        index: dict[str, list[int]] = {}
        for i, (needles, _) in enumerate(self.alternatives):
            for needle in needles:
                index.setdefault(needle, []).append(i)
        return {needle: tuple(found) for needle, found in index.items()}

    def _negated(self, text: str, start: int) -> bool:
        window = text[max(0, start - _NEGATION_WINDOW):start]
        window = _CLAUSE_END.split(window)[-1]
        if self._not_negation is not None:
            window = self._not_negation.sub(" ", window)  # "是不是", "not sure": doubt, not negation
        return self._negation is not None and self._negation.search(window) is not None

    def found(self, text: str) -> str | None:
        """The earliest phrase found in `text` (normalised), after `unless` and negation; None if
        none. The plain definition, phrase by phrase, that `find` must agree with."""
        return self._search(text, [pattern for _, pattern in self.alternatives])

    def _search(self, text: str, patterns: list[re.Pattern[str]]) -> str | None:
        if self.unless_pattern is not None:
            text = self.unless_pattern.sub(" ", text)
        best: re.Match[str] | None = None
        for pattern in patterns:
            for match in pattern.finditer(text):
                if best is not None and match.start() >= best.start():
                    break
                if not (self.negatable and self._negated(text, match.start())):
                    best = match
                    break
        return None if best is None else best.group(0)

    def matches(self, text: str, present: frozenset[str] | None = None) -> bool:
        """`present`: the needles of the whole rule set found in `text` (`RuleSet.present`), when the
        caller asks many rules about one text: each needle is then looked for once, not per rule."""
        return self.find(text, present) is not None

    def find(self, text: str, present: frozenset[str] | None = None) -> str | None:
        hits: Collection[str]
        if present is None:
            hits = [n for n in self.needles if n in text]
        elif present.isdisjoint(self.needles):
            return None  # most rules, for most texts: no allocation
        else:
            hits = present & self.needles
        if not hits:
            return None
        # removing the `unless` phrases could only take matches away: a phrase whose needle is not
        # in the text cannot match
        by_needle = self._by_needle
        chosen = sorted({i for needle in hits for i in by_needle[needle]})
        return self._search(text, [self.alternatives[i][1] for i in chosen])


class CategoryRule(PhraseRule):
    category: Category


class TopicRule(PhraseRule):
    topic: str


class RuleSet(BaseModel):
    """config/rules.yaml"""

    model_config = ConfigDict(extra="forbid")

    words: dict[str, list[str]] = Field(default_factory=dict, description="Word classes: `{name}` in a phrase.")
    negations: list[str] = Field(default_factory=list, description="Cues that negate a `negatable` rule's match.")
    not_negations: list[str] = Field(default_factory=list, description="Doubt that looks like negation (是不是).")
    emergency: list[PhraseRule]
    categories: list[CategoryRule]
    hint_weight: float = Field(1.0, description="What an adapter's category hint adds to that category's score.")
    emergency_help_weight: float = Field(0.0, description="What an emergency adds to `help`'s score.")
    default_category: Category = Category.inquiry
    important: list[PhraseRule] = Field(default_factory=list)
    complex: list[PhraseRule] = Field(default_factory=list)
    topics: list[TopicRule]

    @model_validator(mode="after")
    def _bind(self) -> RuleSet:
        for section in ("emergency", "categories", "important", "complex", "topics"):
            for i, rule in enumerate(getattr(self, section)):
                try:
                    rule.bind(self.words, self.negations, self.not_negations)
                    _ = rule.alternatives, rule.unless_pattern  # compile now: a mistake is a config error
                except (ValueError, re.error) as exc:
                    raise At((section, i, "phrases"), str(exc)) from None
        return self

    @cached_property
    def _automaton(self) -> Any:
        """Every rule's needles in one Aho-Corasick automaton: one pass over the text finds them all."""
        import ahocorasick  # pyahocorasick: a maintained C automaton, one pass instead of a test per needle (docs/performance.md)

        automaton = ahocorasick.Automaton()
        for rule in [*self.emergency, *self.categories, *self.important, *self.complex, *self.topics]:
            for needle in rule.needles:
                automaton.add_word(needle, needle)
        automaton.make_automaton()
        return automaton

    def present(self, lowered: str) -> frozenset[str]:
        """The needles found in the (normalised) text, for all rules at once."""
        if not lowered or len(self._automaton) == 0:
            return frozenset()
        return frozenset(needle for _, needle in self._automaton.iter(lowered))


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
