"""Behavioral reference policies pi0(a|s), one interface for every kind the paper studies.

    from kl_rl import priors
    prior = priors.fit(kind, key, observations, actions, **options)  # a pytree
    mean, std = priors.predict(prior, observations)                  # [B, act_dim] each, std > 0
    priors.save(prior, path); prior = priors.load(path)

Kinds: ``gp`` (sparse GP, N-PPAC's prior), ``mlp``, ``ensemble``, ``dropout``, ``floor``, each
declared in its module through ``registry.register``. ``predict`` is pure and jittable: a
trainer can hold the prior in its state and call it inside its update.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import jax

from kl_rl.priors import gp, mlp  # noqa: F401  (each registers its kinds)
from kl_rl.priors.base import PriorError, check_data, parse_options
from kl_rl.priors.kernels import KERNELS
from kl_rl.priors.registry import KINDS as REGISTRY
from kl_rl.priors.registry import command_line_options, kind_options
from kl_rl.priors.storage import load, load_with_metadata, save

Prior = Any  # one of the registered kinds' pytrees
KINDS: tuple[str, ...] = tuple(REGISTRY)
PriorOptions = command_line_options()  # the flags of every kind, as one dataclass (CLI and library)

__all__ = ["KERNELS", "KINDS", "Prior", "PriorError", "PriorOptions", "fit", "fit_with_info", "kind_options", "load",
           "load_with_metadata", "options_for", "predict", "save"]


def options_for(kind: str, **options: Any) -> Any:
    """The validated options dataclass of ``kind`` (one-line PriorError on a bad kind or option)."""
    from kl_rl.priors.registry import get

    return parse_options(get(kind).options, kind, options)


def fit_with_info(kind: str, key: jax.Array, observations: Any, actions: Any,
                  **options: Any) -> tuple[Prior, dict[str, Any]]:
    """Fits a prior of ``kind`` to (state, action) pairs. observations [N, obs_dim], actions
    [N, act_dim]. Returns the prior and a record of the fit (options, wall time, losses)."""
    parsed = options_for(kind, **options)
    obs, act = check_data(observations, actions)
    prior, info = REGISTRY[kind].fit(key, obs, act, parsed)
    record = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(parsed).items()}
    return prior, {"kind": kind, "options": record, "num_points": int(obs.shape[0]), **info}


def fit(kind: str, key: jax.Array, observations: Any, actions: Any, **options: Any) -> Prior:
    """Fits a prior of ``kind`` (see ``fit_with_info``)."""
    return fit_with_info(kind, key, observations, actions, **options)[0]


def predict(prior: Prior, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Predictive mean and std of pi0 at ``observations``: [B, obs_dim] -> 2 x [B, act_dim].
    Pure and jittable; the std is a standard deviation (never a variance) and is > 0."""
    chex.assert_rank(observations, 2)
    chex.assert_axis_dimension(observations, 1, prior.obs_mean.shape[0])
    kind = REGISTRY.get(getattr(prior, "kind", None))
    if kind is None:
        raise PriorError(f"not a prior: {type(prior).__name__}")
    return kind.predict(prior, observations)
