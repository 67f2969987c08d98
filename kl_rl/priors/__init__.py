"""Behavioral reference policies pi0(a|s), one interface for every kind the paper studies.

    from kl_rl import priors
    prior = priors.fit(kind, key, observations, actions, **options)  # a pytree
    mean, std = priors.predict(prior, observations)                  # [B, act_dim] each, std > 0
    priors.save(prior, path); prior = priors.load(path)

Kinds: ``gp`` (sparse GP, N-PPAC's prior), ``mlp``, ``ensemble``, ``dropout``, ``floor``.
``predict`` is pure and jittable: a trainer can hold the prior in its state and call it inside
its update.
"""

from __future__ import annotations

from typing import Any

import chex
import jax

from kl_rl.priors import gp, mlp
from kl_rl.priors.common import PriorError, check_data, parse_options
from kl_rl.priors.gp import GPOptions, GPPrior
from kl_rl.priors.kernels import KERNELS
from kl_rl.priors.mlp import (
    DropoutOptions,
    DropoutPrior,
    EnsembleOptions,
    EnsemblePrior,
    FloorOptions,
    MLPOptions,
    MLPPrior,
)
from kl_rl.priors.storage import load, load_with_metadata, save

Prior = GPPrior | MLPPrior | EnsemblePrior | DropoutPrior
KINDS: tuple[str, ...] = ("gp", "mlp", "ensemble", "dropout", "floor")
OPTIONS: dict[str, type] = {"gp": GPOptions, "mlp": MLPOptions, "ensemble": EnsembleOptions,
                            "dropout": DropoutOptions, "floor": FloorOptions}

__all__ = ["KERNELS", "KINDS", "OPTIONS", "Prior", "PriorError", "fit", "fit_with_info", "load",
           "load_with_metadata", "options_for", "predict", "save"]


def options_for(kind: str, **options: Any) -> Any:
    """The validated options dataclass of ``kind`` (one-line PriorError on a bad kind or option)."""
    if kind not in KINDS:
        raise PriorError(f"unknown prior '{kind}'; choose one of {', '.join(KINDS)}")
    return parse_options(OPTIONS[kind], kind, options)


def fit_with_info(kind: str, key: jax.Array, observations: Any, actions: Any,
                  **options: Any) -> tuple[Prior, dict[str, Any]]:
    """Fits a prior of ``kind`` to (state, action) pairs. observations [N, obs_dim], actions
    [N, act_dim]. Returns the prior and a record of the fit (options, wall time, losses)."""
    parsed = options_for(kind, **options)
    obs, act = check_data(observations, actions)
    if kind == "gp":
        prior, info = gp.fit(key, obs, act, parsed)
    else:
        prior, info = mlp.fit(kind, key, obs, act, parsed)
    info = {"kind": kind, "options": _jsonable(parsed), "num_points": int(obs.shape[0]), **info}
    return prior, info


def fit(kind: str, key: jax.Array, observations: Any, actions: Any, **options: Any) -> Prior:
    """Fits a prior of ``kind`` (see ``fit_with_info``)."""
    return fit_with_info(kind, key, observations, actions, **options)[0]


def predict(prior: Prior, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Predictive mean and std of pi0 at ``observations``: [B, obs_dim] -> 2 x [B, act_dim].
    Pure and jittable; the std is a standard deviation (never a variance) and is > 0."""
    chex.assert_rank(observations, 2)
    chex.assert_axis_dimension(observations, 1, prior.obs_mean.shape[0])
    if isinstance(prior, GPPrior):
        return gp.predict(prior, observations)
    if isinstance(prior, MLPPrior | EnsemblePrior | DropoutPrior):
        return mlp.predict(prior, observations)
    raise PriorError(f"not a prior: {type(prior).__name__}")


def _jsonable(options: Any) -> dict[str, Any]:
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(options).items()}

