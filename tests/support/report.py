"""Figures a test reports at the end of `make test` (the terminal summary), beside its assertions."""

from __future__ import annotations

import pytest

FIGURES = pytest.StashKey[list[str]]()


def report(config: pytest.Config, line: str) -> None:
    config.stash.setdefault(FIGURES, []).append(line)
