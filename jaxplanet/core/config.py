"""Configs are data: frozen dataclasses, named presets, and typed overrides.

Every system keeps its hyperparameters in a frozen dataclass (possibly nesting other
dataclasses, e.g. ``PlanetConfig.model``). This module turns such a dataclass into a flat
``{"model.deter": 200, ...}`` view, applies string overrides with type checking (the CLI
uses it), and compares two configs field by field (resume refuses a different config).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = [
    "ConfigError",
    "diff",
    "flat_fields",
    "flatten",
    "from_dict",
    "from_preset",
    "override",
    "parse_value",
    "replace",
    "task_preset",
    "to_dict",
]

C = TypeVar("C")


class ConfigError(ValueError):
    """A config override names an unknown field or has a value of the wrong type."""


def from_preset(presets: Mapping[str, Callable[[], C]], name: str) -> C:
    """The config of preset ``name`` (``presets[name]()``).

    Raises:
      ConfigError: an unknown name (the message lists the valid ones).
    """
    if name not in presets:
        raise ConfigError(f"--preset: unknown preset {name!r}; valid presets: {', '.join(presets)}")
    return presets[name]()


def task_preset(
    presets: Mapping[str, Callable[[], C]],
    name: str,
    env: str | None,
    quick_tasks: Mapping[str, Mapping[str, Any]],
    quick_base: Mapping[str, Any] | None = None,
) -> C:
    """Preset ``name`` for task ``env`` (None or the preset's own task: the preset as it is).

    For another task the preset's ``env`` is replaced; ``quick`` then also takes
    ``quick_base`` (what its own task's settings become elsewhere) and the task's entry in
    ``quick_tasks`` (dotted names allowed). Unknown preset names raise `ConfigError`.
    """
    cfg = from_preset(presets, name)
    if env is None or env == cfg.env:
        return cfg
    cfg = dataclasses.replace(cfg, env=env)
    if name == "quick":
        cfg = replace(cfg, **{**(quick_base or {}), **quick_tasks.get(env, {})})
    return cfg


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain-dict view of a (nested) dataclass config; tuples become lists."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def flat_fields(cfg: Any) -> dict[str, tuple[Any, Any, str]]:
    """Map dotted field name -> (type, current value, help text) for every leaf field."""
    out: dict[str, tuple[Any, Any, str]] = {}
    hints = _field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            for sub, spec in flat_fields(value).items():
                out[f"{f.name}.{sub}"] = spec
        else:
            out[f.name] = (hints[f.name], value, f.metadata.get("help", ""))
    return out


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (true/false), got {text!r}")


def parse_value(kind: Any, text: str) -> Any:
    """Parse ``text`` as a ``kind``: int, float, bool, str, Literal, tuple or Optional."""
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        choices = typing.get_args(kind)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, choices))}; got {text!r}")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if text.strip().lower() in ("none", "null") and len(args) < len(typing.get_args(kind)):
            return None
        errors = []
        for arg in args:
            try:
                return parse_value(arg, text)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is tuple:
        (item,) = typing.get_args(kind)[:1]
        parts = [p for p in text.replace("(", "").replace(")", "").split(",") if p.strip()]
        return tuple(parse_value(item, p.strip()) for p in parts)
    if kind is bool:
        return _parse_bool(text)
    if kind is int:
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)  # allow 1e6
            except ValueError:
                raise ValueError(f"expected an integer, got {text!r}") from None
            if not number.is_integer():
                raise ValueError(f"expected an integer, got {text!r}") from None
            return int(number)
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if kind is str:
        return text
    raise ValueError(f"unsupported field type {kind!r}")


def replace(cfg: C, **changes: Any) -> C:
    """``dataclasses.replace`` that also accepts dotted names (``**{"model.deter": 64}``)."""
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    for name, value in changes.items():
        head, _, rest = name.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[name] = value
    for head, sub in nested.items():
        direct[head] = replace(getattr(cfg, head), **sub)
    return dataclasses.replace(cfg, **direct)


def override(cfg: C, overrides: Mapping[str, str]) -> C:
    """Apply ``{"model.deter": "64", ...}`` string overrides with type checks.

    Raises:
        ConfigError: naming the field and why, for unknown fields or bad values.
    """
    fields = flat_fields(cfg)
    parsed: dict[str, Any] = {}
    for name, text in overrides.items():
        if name not in fields:
            import difflib

            close = difflib.get_close_matches(name, list(fields), n=3)
            hint = f" Did you mean: {', '.join('--' + c for c in close)}?" if close else ""
            raise ConfigError(f"--{name}: no such config field.{hint}")
        kind = fields[name][0]
        try:
            parsed[name] = parse_value(kind, text)
        except ValueError as err:
            raise ConfigError(f"--{name}: {err}") from None
    try:
        new = replace(cfg, **parsed)
    except ValueError as err:  # a dataclass's own __post_init__ checks
        flags = ", ".join(f"--{name}" for name in parsed)
        raise ConfigError(f"{flags}: {err}") from None
    validate = getattr(new, "validate", None)
    if validate is not None:
        validate()
    return new


def diff(saved: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Fields that differ between two nested config dicts: ``[(name, saved, new), ...]``."""
    a, b = flatten(saved), flatten(new)
    missing = object()
    rows = []
    for name in sorted(set(a) | set(b)):
        va, vb = a.get(name, missing), b.get(name, missing)
        if isinstance(va, tuple):
            va = list(va)
        if isinstance(vb, tuple):
            vb = list(vb)
        if va != vb:
            rows.append(
                (name, "<missing>" if va is missing else va, "<missing>" if vb is missing else vb)
            )
    return rows


def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Rebuild a (nested) dataclass config from ``to_dict`` output; unknown keys are errors."""
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = from_dict(kind, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
