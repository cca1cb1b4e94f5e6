"""YAML for pydantic configs: a commented dump a person can edit, and a load with readable errors.

The dump writes each field's ``description`` as a ``#`` comment above it, so the file printed
by ``avlora config`` explains itself. Values are written by PyYAML's safe dumper, so loading
the text gives back exactly the data that was dumped. Pure Python: no torch.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

_COMMENT_WIDTH = 96


class ConfigFileError(ValueError):
    """A config text that is not valid YAML or breaks the schema; one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def dump_commented_yaml(model: BaseModel, header: str | None = None) -> str:
    """YAML text for ``model`` with each field's description as a comment above it."""
    lines: list[str] = []
    if header:
        lines += [f"# {line}".rstrip() for line in header.splitlines()]
        lines.append("")
    data = model.model_dump(mode="json")
    _emit_model(model, data, lines, indent=0)
    return "\n".join(lines).rstrip() + "\n"


def load_yaml_mapping(text: str, source: str = "config") -> dict[str, Any]:
    """Parse YAML text that must hold a mapping; raise :class:`ConfigFileError` otherwise."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError([f"{source}: not valid YAML{where}: {problem}"]) from exc
    if data is None:
        raise ConfigFileError([f"{source}: the file is empty"])
    if not isinstance(data, dict):
        raise ConfigFileError([f"{source}: expected a mapping of settings, got {type(data).__name__}"])
    return data


def validation_problems(exc: ValidationError) -> list[str]:
    """One readable line per pydantic error: ``lora.rank: must be >= 1 (got 0)``."""
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"] if not _is_union_tag(part)) or "config"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling; see `avlora config` for the list)"
        elif error["type"] == "missing":
            message = "required setting is missing"
        elif "input" in error and error["type"] not in ("value_error", "assertion_error"):
            message = f"{message} (got {error['input']!r})"
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        problems.append(f"{location}: {message}")
    return problems


def _is_union_tag(part: object) -> bool:
    # pydantic puts the union member's type name in the location (e.g. "list[str]"); hide it.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})


def _emit_model(model: BaseModel, data: dict[str, Any], lines: list[str], indent: int) -> None:
    pad = " " * indent
    fields = type(model).model_fields
    for index, (name, info) in enumerate(fields.items()):
        value = getattr(model, name)
        if info.description:
            if indent == 0 and index:
                lines.append("")
            lines += [f"{pad}# {chunk}" for chunk in _wrap(info.description, _COMMENT_WIDTH - indent)]
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            _emit_model(value, data[name], lines, indent + 2)
        else:
            lines += _emit_value(name, data[name], pad)


def _emit_value(name: str, value: Any, pad: str) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(v, (int, float, bool)) for v in value):
        flow = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
        return [f"{pad}{name}: {flow}"]
    if isinstance(value, (list, dict)) and value:
        body = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1000)
        return [f"{pad}{name}:"] + [f"{pad}  {line}" for line in body.rstrip("\n").splitlines()]
    scalar = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000).rstrip("\n")
    if scalar.endswith("\n..."):
        scalar = scalar[: -len("\n...")]
    scalar = scalar.removesuffix("...").rstrip()
    return [f"{pad}{name}: {scalar}"]


def _wrap(text: str, width: int) -> list[str]:
    words, lines, current = text.split(), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width - 2:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines
