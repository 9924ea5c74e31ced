"""Configuration files under `config/`: YAML validated into pydantic models, errors with file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file is missing or invalid; the message names file, line and field."""


EX_CONFIG = 78  # sysexits.h: a service refusing to start on a bad configuration exits with this


class At(ValueError):
    """A check across fields of one file that knows where the mistake is: raise it in a model
    validator, and the error names the line of `path` (e.g. ("responsibility", "fraud", "lead"))
    rather than the top of the file."""

    def __init__(self, path: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


def load_yaml_model(path: Path, model: type[M]) -> M:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            cause = (err.get("ctx") or {}).get("error")
            at = (*err["loc"], *cause.path) if isinstance(cause, At) else err["loc"]
            loc = ".".join(str(p) for p in at) or "(top level)"
            line = _line_of(node, at)
            where = f"{path}:{line}" if line else str(path)
            message = str(cause) if isinstance(cause, At) else err["msg"]
            lines.append(f"{where}: {loc}: {message}")
        raise ConfigError("\n".join(lines)) from exc


def line_of(path: Path, at: tuple[Any, ...]) -> str:
    """`file:line` of a value in a YAML file (for checks across files), or just the file."""
    try:
        line = _line_of(yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader), at)
    except (OSError, yaml.YAMLError):
        line = None
    return f"{path}:{line}" if line else str(path)


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at `loc`, or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


class _DepartmentNames(BaseModel):
    model_config = {"extra": "ignore"}
    departments: list[str]


def department_names(config_dir: Path) -> tuple[str, ...]:
    """The departments listed in config/departments.yaml (bounded label values for metrics)."""
    return tuple(load_yaml_model(config_dir / "departments.yaml", _DepartmentNames).departments)
