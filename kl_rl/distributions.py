"""Tanh-squashed diagonal Gaussian: the SAC actor's action distribution on the box [-1, 1]^d."""

from __future__ import annotations

import jax
import jax.numpy as jnp

_LOG_2PI = jnp.log(2.0 * jnp.pi)


def gaussian_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Log density of a diagonal Gaussian, summed over the last axis. [..., d] -> [...]."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * _LOG_2PI, axis=-1)


def tanh_log_det_jacobian(pre_tanh: jax.Array) -> jax.Array:
    """log |d tanh(u)/du| summed over the last axis, computed stably:
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)). [..., d] -> [...]."""
    return jnp.sum(2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)


def sample_tanh_gaussian(
    key: jax.Array, mean: jax.Array, log_std: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterized sample a = tanh(mean + std * eps) and its log-density under the squashed
    distribution (change of variables). [..., d] -> ([..., d], [...])."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    pre_tanh = mean + jnp.exp(log_std) * eps
    log_prob = gaussian_log_prob(pre_tanh, mean, log_std) - tanh_log_det_jacobian(pre_tanh)
    return jnp.tanh(pre_tanh), log_prob


def deterministic_action(mean: jax.Array) -> jax.Array:
    """The evaluation action: the squashed mean. [..., d] -> [..., d]."""
    return jnp.tanh(mean)


def tanh_gaussian_log_prob(action: jax.Array, mean: jax.Array, log_std: jax.Array,
                           edge: float = 1e-3) -> jax.Array:
    """log pi(a|s) of a given action in the box under the tanh-squashed Gaussian (for behavior
    cloning). Actions are pulled ``edge`` inside (-1, 1) so atanh stays finite. [..., d] -> [...]."""
    clipped = jnp.clip(action, -1.0 + edge, 1.0 - edge)
    pre_tanh = jnp.arctanh(clipped)
    return gaussian_log_prob(pre_tanh, mean, log_std) - tanh_log_det_jacobian(pre_tanh)
