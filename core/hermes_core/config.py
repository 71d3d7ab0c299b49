"""Configuration: frozen pydantic models, loadable from YAML, errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

__all__ = ["ToolsetConfig", "HermesConfig", "load_config", "validation_message"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolsetConfig(_Frozen):
    """A toolset defined in config: tools by name plus included toolsets."""

    tools: list[str] = Field(default_factory=list)
    includes: list[str] = Field(default_factory=list)
    description: str = ""


class HermesConfig(_Frozen):
    """The top-level ``hermes.yaml``.

    Example::

        backend: local
        backend_options: {env: {FOO: bar}}
        toolsets: [default, mine]
        custom_toolsets:
          mine: {tools: [terminal], includes: [file]}
    """

    backend: str = "local"
    backend_options: dict[str, Any] = Field(default_factory=dict)
    toolsets: list[str] = Field(default_factory=lambda: ["default"])
    custom_toolsets: dict[str, ToolsetConfig] = Field(default_factory=dict)
    max_output_chars: int = Field(50_000, gt=0)


def validation_message(e: ValidationError, model: type[BaseModel], where: str) -> str:
    """Name each bad key, say what is wrong and how to fix it."""
    lines = []
    for err in e.errors():
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent: Any = model
            for part in err["loc"][:-1]:
                field = getattr(parent, "model_fields", {}).get(part)
                ann = getattr(field, "annotation", None) if field else None
                parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
                if parent is None:
                    break
            allowed = ", ".join(parent.model_fields) if parent is not None else "?"
            lines.append(f"{where}: unknown key {key!r}; allowed keys here: {allowed}. Remove or rename it.")
        elif err["type"] == "missing":
            lines.append(f"{where}: missing required key {key!r}. Add it.")
        else:
            lines.append(f"{where}: key {key!r}: {err['msg']} (got {err.get('input')!r}). Fix the value.")
    return "\n".join(lines)


def load_config(path: str | Path, model: type[BaseModel] = HermesConfig) -> Any:
    """Load and validate a YAML config file.

    Raises:
        ConfigError: unreadable file, invalid YAML (with line), or invalid keys (named).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_message(e, model, str(path))) from None
