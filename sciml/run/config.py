"""Configs: TOML files loaded into frozen dataclasses, validated with one-line errors.

Declare a config as a frozen dataclass; give range or choice limits with :func:`param`::

    @dataclass(frozen=True)
    class TrainConfig:
        steps: int = param(1000, ge=1, doc="optimiser steps")
        lr: float = param(1e-3, gt=0)
        method: str = param("forward", choices=("forward", "hessian"))
        model: ModelConfig = field(default_factory=ModelConfig)   # nested table [model]

    cfg = load_config("run.toml", TrainConfig)     # or load_config({"steps": 10}, TrainConfig)

An unknown key, a wrong type, a value out of range or a missing required key raises
:class:`ConfigError`, whose message names the key (dotted for nested tables) and the fix; the CLI
prints it on one line and exits with status 2.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from dataclasses import MISSING, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar

from .errors import UserError

__all__ = ["ConfigError", "param", "load_config", "read_toml", "parse_overrides", "config_to_dict", "dump_toml", "replace_config"]

T = TypeVar("T")


class ConfigError(UserError):
    """A config value is wrong. ``key`` is the dotted key; ``str(err)`` is a one-line message."""

    def __init__(self, key: str, message: str, source: str | None = None):
        self.key = key
        where = f"{source}: " if source else ""
        super().__init__(f"{where}config key '{key}': {message}")


def param(default: Any = MISSING, *, ge=None, gt=None, le=None, lt=None, choices=None, doc: str = "",
          default_factory: Any = MISSING) -> Any:
    """A dataclass field with validation limits (``ge``/``gt``/``le``/``lt``, ``choices``) and a doc line."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": tuple(choices) if choices else None, "doc": doc}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (TOML types), converting where lossless."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(key, f"expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(key, f"must be one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(key, f"expected a list of {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a table [{key}], got {value!r}")
        return _build(tp, value, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(key, f"must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    return value


def _check_limits(value: Any, meta: Mapping[str, Any], key: str) -> None:
    if value is None:
        return
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(key, f"must be one of {list(meta['choices'])}, got {value!r}")
    for name, op, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                           ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        bound = meta.get(name)
        if bound is not None:
            items = value if isinstance(value, (list, tuple)) else [value]
            for v in items:
                if not op(v, bound):
                    raise ConfigError(key, f"must be {word} {bound}, got {v!r}")


def _build(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    for k in data:
        if k not in known:
            close = [n for n in known if n.lower().startswith(str(k)[:3].lower())]
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {sorted(known)}"
            raise ConfigError(f"{prefix}{k}", f"unknown key{hint}")
    kwargs = {}
    for name, f in known.items():
        key = f"{prefix}{name}"
        if name in data:
            value = _coerce(data[name], hints[name], key)
            _check_limits(value, f.metadata, key)
            kwargs[name] = value
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(key, "required key is missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # __post_init__ cross-field checks
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(prefix.rstrip(".") or "<root>", str(e)) from None


def load_config(source: str | Path | Mapping[str, Any], cls: type[T], *, overrides: Mapping[str, Any] | None = None,
                prefix: str = "", source_name: str | None = None) -> T:
    """Load a TOML file (or a dict) into the frozen dataclass ``cls``, validating every key.

    Args:
        source: path to a ``.toml`` file, or an already-parsed mapping.
        cls: the config dataclass.
        overrides: dotted keys to set after reading (e.g. from command-line flags).
        prefix: dotted prefix for key names in errors, when ``source`` is a table of a larger file.
        source_name: file name for errors when ``source`` is a mapping read from a file.

    Raises:
        ConfigError: one-line message naming the key.
    """
    src_name = source_name
    if isinstance(source, (str, Path)):
        src_name = str(source)
        data = read_toml(source)
    else:
        data = dict(source)
    data = _deep_copy(data)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    try:
        return _build(cls, data, prefix=prefix)
    except ConfigError as e:
        if src_name and not str(e).startswith(src_name):
            raise ConfigError(e.key, str(e).split(": ", 1)[1], src_name) from None
        raise


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning every way it can be unusable into a one-line :class:`ConfigError`.

    Raises:
        ConfigError: the file is missing, a folder, unreadable, not UTF-8 text, or not valid TOML.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError("<file>", f"config file {path} does not exist")
    if not path.is_file():
        raise ConfigError("<file>", f"{path} is not a file; pass a TOML config file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError("<file>", f"cannot read {path} ({e.strerror}); check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError("<file>", f"not UTF-8 text (byte {e.start}); a config is a TOML text file, saved as UTF-8",
                          str(path)) from None
    if "\x00" in text:
        raise ConfigError("<file>", "binary data, not a TOML text file", str(path))
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("<file>", f"not valid TOML ({e}); check quoting and [table] headers", str(path)) from None


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.lr=1e-3", "name=run"]`` (command-line ``--set``) -> ``{"train.lr": 0.001, ...}`` for
    :func:`load_config`'s ``overrides``; values are read as TOML, and a bare word is a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(item, "--set expects key=value, e.g. --set train.lr=1e-3")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = tomllib.loads(f"v = {v}")["v"]
        except tomllib.TOMLDecodeError:
            out[k.strip()] = v
    return out


def _deep_copy(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in d.items()}


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain nested dicts/lists (tuples become lists), for TOML/JSON."""
    def conv(v):
        if is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v
    return conv(cfg)


def replace_config(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` with the same validation as loading."""
    data = config_to_dict(cfg)
    data.update(changes)
    return _build(type(cfg), data)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write nested dicts of scalars and lists as TOML (``None`` values are left out)."""
    lines: list[str] = []

    def table(d: Mapping[str, Any], name: str):
        scalars = {k: v for k, v in d.items() if not isinstance(v, Mapping) and v is not None}
        subs = {k: v for k, v in d.items() if isinstance(v, Mapping)}
        if name and (scalars or not subs):
            lines.append(f"[{name}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {_toml_value(v)}")
        if scalars:
            lines.append("")
        for k, v in subs.items():
            table(v, f"{name}.{k}" if name else k)

    table(data, "")
    return "\n".join(lines).rstrip() + "\n"
