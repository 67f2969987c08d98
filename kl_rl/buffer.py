"""Replay buffer as a pure pytree: a ring buffer with ``init`` / ``add`` / ``sample``.

Every function returns a new buffer; under ``jax.jit`` with the state donated, XLA updates the
storage in place.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Transition:
    """One (batch of) transition(s). Leading axes are batch axes."""

    obs: jax.Array  # [..., obs_size]
    action: jax.Array  # [..., action_size]
    reward: jax.Array  # [...]
    next_obs: jax.Array  # [..., obs_size]
    terminated: jax.Array  # [...] float32, 1.0 where the MDP ended (no bootstrap)
    # The fixed prior pi0 at obs and next_obs, stored when the transition is added so updates
    # need not predict it again: [..., 4, action_size] = (mean(s), std(s), mean(s'), std(s')).
    prior: jax.Array | None = None


@struct.dataclass
class ReplayBuffer:
    data: Transition  # leaves with a leading [capacity] axis
    insert_pos: jax.Array  # [] int32, next row to write
    size: jax.Array  # [] int32, rows filled so far (<= capacity)

    @property
    def capacity(self) -> int:
        return self.data.reward.shape[0]


def init(capacity: int, obs_size: int, action_size: int, prior_moments: bool = False) -> ReplayBuffer:
    """An empty buffer of ``capacity`` float32 transitions (with room for the prior's moments
    when ``prior_moments``)."""
    if capacity < 1:
        raise ValueError(f"replay capacity must be >= 1, got {capacity}")
    z = lambda *shape: jnp.zeros((capacity, *shape), jnp.float32)  # noqa: E731
    data = Transition(
        obs=z(obs_size), action=z(action_size), reward=z(), next_obs=z(obs_size), terminated=z(),
        prior=z(4, action_size) if prior_moments else None,
    )
    return ReplayBuffer(data=data, insert_pos=jnp.int32(0), size=jnp.int32(0))


def add(buffer: ReplayBuffer, batch: Transition) -> ReplayBuffer:
    """Writes a batch of ``n`` transitions, overwriting the oldest rows once full."""
    n = batch.reward.shape[0]
    chex.assert_tree_shape_prefix(batch, (n,))
    if n > buffer.capacity:
        raise ValueError(f"cannot add {n} transitions to a buffer of capacity {buffer.capacity}")
    rows = (buffer.insert_pos + jnp.arange(n, dtype=jnp.int32)) % buffer.capacity  # [n]
    data = jax.tree.map(lambda store, x: store.at[rows].set(x.astype(store.dtype)), buffer.data, batch)
    return ReplayBuffer(
        data=data,
        insert_pos=(buffer.insert_pos + n) % buffer.capacity,
        size=jnp.minimum(buffer.size + n, buffer.capacity),
    )


def sample(buffer: ReplayBuffer, key: jax.Array, shape: tuple[int, ...]) -> Transition:
    """Uniformly samples filled rows, with replacement, into leading axes ``shape``.

    Sampling from an empty buffer returns row 0 (zeros); callers gate updates on ``size``.
    """
    rows = jax.random.randint(key, shape, 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda store: store[rows], buffer.data)
