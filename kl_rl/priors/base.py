"""Pieces every behavioral prior shares: the error type, input standardisation, option
parsing into frozen dataclasses, shape checks and the Gaussian log-likelihood."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax.numpy as jnp
import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))
MIN_FIT_POINTS = 8


class PriorError(ValueError):
    """A prior cannot be fitted, loaded or used as asked (bad kind, option, shape or file)."""


OptionsT = TypeVar("OptionsT")


def parse_options(cls: type[OptionsT], kind: str, options: dict[str, Any]) -> OptionsT:
    """Builds the options dataclass of ``kind``; an unknown name is a one-line error that lists
    the known ones, and ``validate()`` (when defined) checks the values."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - known)
    if unknown:
        raise PriorError(f"unknown option(s) {', '.join(unknown)} for prior '{kind}'; "
                         f"known: {', '.join(sorted(known))}")
    parsed = cls(**options)
    check = getattr(parsed, "validate", None)
    if check is not None:
        check()
    return parsed


def check_data(observations: Any, actions: Any) -> tuple[np.ndarray, np.ndarray]:
    """Host-side checks of a fitting set: 2-D, same length, finite, enough points."""
    obs = np.asarray(observations, np.float64)
    act = np.asarray(actions, np.float64)
    if obs.ndim != 2 or act.ndim != 2:
        raise PriorError(f"observations and actions must be 2-D [N, dim]; got shapes {obs.shape} and {act.shape}")
    if obs.shape[0] != act.shape[0]:
        raise PriorError(f"observations ({obs.shape[0]} rows) and actions ({act.shape[0]} rows) differ in length; "
                         "pass one action per observation")
    if obs.shape[0] < MIN_FIT_POINTS:
        raise PriorError(f"too few points to fit a prior: {obs.shape[0]} (need at least {MIN_FIT_POINTS})")
    if not (np.isfinite(obs).all() and np.isfinite(act).all()):
        raise PriorError("observations or actions contain NaN or inf; clean the demonstrations first")
    return obs, act


def standardizer(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and scale of the demonstration states. Constant dimensions get scale
    1 so they pass through unscaled instead of dividing by zero."""
    mean = obs.mean(axis=0)
    std = obs.std(axis=0)
    return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def standardize(obs: jnp.ndarray, mean: jnp.ndarray, scale: jnp.ndarray) -> jnp.ndarray:
    return (obs - mean) / scale


def gaussian_nll(y: jnp.ndarray, mean: jnp.ndarray, std: jnp.ndarray) -> jnp.ndarray:
    """Negative log-density of independent Gaussians, summed over the last axis."""
    z = (y - mean) / std
    return jnp.sum(0.5 * z**2 + jnp.log(std) + 0.5 * LOG_2PI, axis=-1)
