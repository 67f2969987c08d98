"""The registry of behavioral prior kinds. A kind is declared once, in its own module, by
``register(PriorKind(...))``: its name, options, fit, predict, stored class and command-line
flags. Everything else (the list of kinds, option parsing, storage, the flags of ``kl-rl
train | sweep | fit-prior``) is derived from here.

A new kind: one module that defines the pieces and calls ``register``, plus its import in
``kl_rl/priors/__init__.py``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from collections.abc import Callable
from typing import Annotated, Any

from kl_rl.priors.base import PriorError


@dataclasses.dataclass(frozen=True)
class PriorKind:
    """One kind of pi0."""

    name: str
    options: type
    """Frozen dataclass of the fit's options (a ``validate()`` method, if any, checks values)."""
    prior_class: type
    """The pytree ``fit`` returns (a ``kind`` static field names the kind); storage rebuilds it."""
    fit: Callable[..., tuple[Any, dict[str, Any]]]
    """(key, observations [N, o] float64, actions [N, a] float64, options) -> (prior, record)."""
    predict: Callable[[Any, Any], tuple[Any, Any]]
    """(prior, observations [B, o]) -> (mean, std), each [B, a]; pure and jittable."""
    flags: dict[str, str] = dataclasses.field(default_factory=dict)
    """Command-line flag -> option field. Kinds share a flag by naming the same one (e.g. the MLP
    kinds' ``mlp_steps``)."""


KINDS: dict[str, PriorKind] = {}


def register(kind: PriorKind) -> PriorKind:
    KINDS[kind.name] = kind
    return kind


def get(name: str) -> PriorKind:
    """The kind called ``name``; a one-line PriorError lists the known ones."""
    if name not in KINDS:
        raise PriorError(f"unknown prior '{name}'; choose one of {', '.join(KINDS)}")
    return KINDS[name]


def _field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a dataclass's fields (and its bases')."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body  # type: ignore[attr-defined]
        except (OSError, TypeError, IndexError, AttributeError):
            continue
        for node, after in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def command_line_options() -> type:
    """A dataclass of every kind's flags, for the CLI (tyro) and for library callers: each flag
    has its option's type, default and docstring. A flag named like an env preset field (the GP's
    ``kernel``) defaults to None: the env's preset."""
    import tyro

    from kl_rl.envs import Preset

    preset_fields = {f.name for f in dataclasses.fields(Preset)}
    fields, seen = [], set()
    for kind in KINDS.values():
        option_fields = {f.name: f for f in dataclasses.fields(kind.options)}
        hints, docs = typing.get_type_hints(kind.options), _field_docs(kind.options)
        for flag, option in kind.flags.items():
            if flag in seen:
                continue
            seen.add(flag)
            spec = option_fields[option]
            default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
            kinds = [k.name for k in KINDS.values() if flag in k.flags]
            help_text = f"{docs.get(option, option)} ({', '.join(kinds)})"
            tp: Any = hints[option]
            if flag in preset_fields:
                tp, default, help_text = tp | None, None, f"{help_text}; default: the env's preset"
            fields.append((flag, Annotated[tp, tyro.conf.arg(help=help_text)], dataclasses.field(default=default)))
    return dataclasses.make_dataclass("PriorOptions", fields, frozen=True,
                                      namespace={"__doc__": "Options of the behavioral priors (per kind)."})


def kind_options(flags: Any, kind: str, env: str | None = None) -> dict[str, Any]:
    """The ``fit`` options of ``kind`` taken from a ``command_line_options()`` instance (None
    where there is no instance: the kind's defaults); preset-backed flags left at None take
    the env's preset."""
    spec = get(kind)
    out = {}
    for flag, option in spec.flags.items():
        value = getattr(flags, flag) if flags is not None else None
        if value is None:
            from kl_rl.envs import ENV_NAMES, Preset, preset

            if flag in {f.name for f in dataclasses.fields(Preset)}:
                value = getattr(preset(env) if env in ENV_NAMES else Preset(), flag)
            else:
                continue
        out[option] = value
    return out
