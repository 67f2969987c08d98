"""Parametric behavioral priors: the Gaussian MLPs the paper compares the GP with.

- ``mlp``: a heteroscedastic Gaussian MLP, s -> (mu(s), sigma(s)), fitted by maximum likelihood.
  Nothing stops sigma(s) from shrinking wherever the data allow, on and off the demonstrations:
  the variance collapse behind the KL pathology.
- ``ensemble``: E such MLPs trained in parallel (vmapped over their keys: different
  initialisations and minibatch orders); the prediction is the mixture's mean and variance.
- ``dropout``: an MC-dropout MLP; moments over T stochastic passes whose masks come from a key
  stored in the prior, so ``predict`` is deterministic and pure.
- ``floor``: the ``mlp`` prior with sigma(s) bounded below by a chosen constant.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from kl_rl.priors.base import PriorError, gaussian_nll, standardize, standardizer
from kl_rl.priors.registry import PriorKind, register

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclasses.dataclass(frozen=True)
class MLPOptions:
    """Options of the heteroscedastic MLP prior (and of the kinds built on it)."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    steps: int = 10_000
    """Adam steps of maximum likelihood."""
    batch_size: int = 256
    learning_rate: float = 1e-3

    def validate(self) -> None:
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise PriorError(f"hidden_sizes must be positive layer widths, got {self.hidden_sizes}")
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise PriorError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise PriorError(f"learning_rate must be positive, got {self.learning_rate}")


@dataclasses.dataclass(frozen=True)
class EnsembleOptions(MLPOptions):
    """Options of the deep ensemble."""

    num_members: int = 5
    """Ensemble members, each trained from its own initialization."""

    def validate(self) -> None:
        super().validate()
        if self.num_members < 2:
            raise PriorError(f"num_members must be >= 2 for an ensemble, got {self.num_members}")


@dataclasses.dataclass(frozen=True)
class DropoutOptions(MLPOptions):
    """Options of the MC-dropout MLP."""

    dropout_rate: float = 0.1
    """Dropout rate after each hidden layer, in training and in prediction."""
    num_passes: int = 20
    """Stochastic forward passes averaged by ``predict``."""

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.dropout_rate < 1.0:
            raise PriorError(f"dropout_rate must be in (0, 1), got {self.dropout_rate}")
        if self.num_passes < 2:
            raise PriorError(f"num_passes must be >= 2, got {self.num_passes}")


@dataclasses.dataclass(frozen=True)
class FloorOptions(MLPOptions):
    """Options of the variance-floor prior."""

    min_std: float = 0.1
    """Lower bound on the predictive std."""

    def validate(self) -> None:
        super().validate()
        if not self.min_std > 0:
            raise PriorError(f"min_std must be positive, got {self.min_std}")


class GaussianMLP(nn.Module):
    """s -> (mean, log std), both [..., action_size]; dropout after each hidden layer when
    ``dropout_rate`` > 0 and ``deterministic`` is False."""

    hidden_sizes: Sequence[int]
    action_size: int
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> tuple[jax.Array, jax.Array]:
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
            if self.dropout_rate > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=deterministic)(x)
        mean = nn.Dense(self.action_size)(x)
        log_std = jnp.clip(nn.Dense(self.action_size)(x), LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std


@struct.dataclass
class MLPPrior:
    """``mlp`` (min_std 0) and ``floor`` priors."""

    obs_mean: jax.Array  # [obs_dim]
    obs_scale: jax.Array  # [obs_dim]
    params: Any
    min_std: jax.Array  # [] lower bound on the std (0 for the plain MLP)
    hidden_sizes: tuple[int, ...] = struct.field(pytree_node=False, default=(256, 256))
    action_size: int = struct.field(pytree_node=False, default=1)
    kind: str = struct.field(pytree_node=False, default="mlp")


@struct.dataclass
class EnsemblePrior:
    obs_mean: jax.Array
    obs_scale: jax.Array
    params: Any  # leaves [E, ...]
    hidden_sizes: tuple[int, ...] = struct.field(pytree_node=False, default=(256, 256))
    action_size: int = struct.field(pytree_node=False, default=1)
    kind: str = struct.field(pytree_node=False, default="ensemble")


@struct.dataclass
class DropoutPrior:
    obs_mean: jax.Array
    obs_scale: jax.Array
    params: Any
    pass_key: jax.Array  # [2] uint32 raw key: the T dropout masks of ``predict``
    hidden_sizes: tuple[int, ...] = struct.field(pytree_node=False, default=(256, 256))
    action_size: int = struct.field(pytree_node=False, default=1)
    dropout_rate: float = struct.field(pytree_node=False, default=0.1)
    num_passes: int = struct.field(pytree_node=False, default=20)
    kind: str = struct.field(pytree_node=False, default="dropout")


def _network(prior: Any) -> GaussianMLP:
    return GaussianMLP(prior.hidden_sizes, prior.action_size, getattr(prior, "dropout_rate", 0.0))


def mixture_moments(means: jax.Array, stds: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and std of an equal-weight Gaussian mixture over the leading axis: [K, B, D] -> [B, D]."""
    mean = jnp.mean(means, axis=0)
    second = jnp.mean(stds**2 + means**2, axis=0)
    return mean, jnp.sqrt(jnp.maximum(second - mean**2, 0.0))


def predict(prior: MLPPrior | EnsemblePrior | DropoutPrior, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Predictive mean and std: [B, obs_dim] -> 2 x [B, act_dim]."""
    x = standardize(observations, prior.obs_mean, prior.obs_scale)
    net = _network(prior)
    if isinstance(prior, MLPPrior):
        mean, log_std = net.apply(prior.params, x)
        return mean, jnp.maximum(jnp.exp(log_std), prior.min_std)
    if isinstance(prior, EnsemblePrior):
        means, log_stds = jax.vmap(net.apply, in_axes=(0, None))(prior.params, x)  # [E, B, D]
        return mixture_moments(means, jnp.exp(log_stds))
    keys = jax.random.split(jax.random.wrap_key_data(prior.pass_key), prior.num_passes)

    def one_pass(key):
        return net.apply(prior.params, x, deterministic=False, rngs={"dropout": key})

    means, log_stds = jax.vmap(one_pass)(keys)  # [T, B, D]
    return mixture_moments(means, jnp.exp(log_stds))


def _train(key: jax.Array, net: GaussianMLP, x: jax.Array, y: jax.Array,
           options: MLPOptions) -> tuple[Any, jax.Array]:
    """Maximum likelihood by Adam on uniform minibatches, all steps in one scan.
    Returns the parameters and the loss (mean NLL per step) of every step."""
    key_init, key_steps = jax.random.split(key)
    params = net.init(key_init, x[:1])
    tx = optax.adam(options.learning_rate)
    n = x.shape[0]

    def loss_fn(params, idx, key_dropout):
        mean, log_std = net.apply(params, x[idx], deterministic=False, rngs={"dropout": key_dropout})
        return jnp.mean(gaussian_nll(y[idx], mean, jnp.exp(log_std)))

    def step(carry, key_step):
        params, opt_state = carry
        key_batch, key_dropout = jax.random.split(key_step)
        idx = jax.random.randint(key_batch, (options.batch_size,), 0, n)
        loss, grads = jax.value_and_grad(loss_fn)(params, idx, key_dropout)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key_steps, options.steps))
    return params, losses


def fit(kind: str, key: jax.Array, observations: np.ndarray, actions: np.ndarray,
        options: MLPOptions) -> tuple[MLPPrior | EnsemblePrior | DropoutPrior, dict[str, Any]]:
    """Fits one of the MLP kinds; returns the prior and a record of the fit."""
    start = time.perf_counter()
    obs_mean, obs_scale = standardizer(observations)
    x = jnp.asarray((observations - obs_mean) / obs_scale, jnp.float32)  # [N, d]
    y = jnp.asarray(actions, jnp.float32)  # [N, D]
    action_size = int(y.shape[1])
    hidden = tuple(int(h) for h in options.hidden_sizes)
    common = {"obs_mean": obs_mean, "obs_scale": obs_scale, "hidden_sizes": hidden, "action_size": action_size}
    key_train, key_passes = jax.random.split(key)
    if kind == "ensemble":
        assert isinstance(options, EnsembleOptions)
        net = GaussianMLP(hidden, action_size)
        keys = jax.random.split(key_train, options.num_members)
        params, losses = jax.jit(jax.vmap(lambda k: _train(k, net, x, y, options)))(keys)
        prior: Any = EnsemblePrior(params=params, **common)
        final_loss = losses[:, -100:].mean()
    else:
        rate = options.dropout_rate if isinstance(options, DropoutOptions) else 0.0
        net = GaussianMLP(hidden, action_size, rate)
        params, losses = jax.jit(lambda k: _train(k, net, x, y, options))(key_train)
        final_loss = losses[-100:].mean()
        if kind == "dropout":
            assert isinstance(options, DropoutOptions)
            prior = DropoutPrior(params=params, pass_key=jax.random.key_data(key_passes), dropout_rate=rate,
                                 num_passes=options.num_passes, **common)
        else:
            min_std = options.min_std if isinstance(options, FloorOptions) else 0.0
            prior = MLPPrior(params=params, min_std=jnp.asarray(min_std, jnp.float32), kind=kind, **common)
    final_loss = float(final_loss)
    if not np.isfinite(final_loss):
        raise PriorError(f"the {kind} prior's training diverged (non-finite loss); lower the learning rate")
    return prior, {"final_train_nll": final_loss, "fit_seconds": time.perf_counter() - start}


_MLP_FLAGS = {"mlp_steps": "steps"}
register(PriorKind("mlp", MLPOptions, MLPPrior, functools.partial(fit, "mlp"), predict, _MLP_FLAGS))
register(PriorKind("ensemble", EnsembleOptions, EnsemblePrior, functools.partial(fit, "ensemble"), predict,
                   {**_MLP_FLAGS, "num_members": "num_members"}))
register(PriorKind("dropout", DropoutOptions, DropoutPrior, functools.partial(fit, "dropout"), predict,
                   {**_MLP_FLAGS, "dropout_rate": "dropout_rate", "num_passes": "num_passes"}))
register(PriorKind("floor", FloorOptions, MLPPrior, functools.partial(fit, "floor"), predict,
                   {**_MLP_FLAGS, "min_std": "min_std"}))
