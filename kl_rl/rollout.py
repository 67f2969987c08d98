"""Whole-episode rollouts of a fixed policy in ``num_envs`` parallel envs (no auto-reset).

Used for deterministic evaluation, and reusable wherever complete episodes are needed.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from kl_rl.envs import VecEnv


@struct.dataclass
class EpisodeStats:
    returns: jax.Array  # [num_envs] undiscounted return of each episode
    lengths: jax.Array  # [num_envs] int32 steps until termination or the time limit


def run_episodes(env: VecEnv, act: Callable[[jax.Array], jax.Array], key: jax.Array) -> EpisodeStats:
    """Runs one episode in each of ``env.num_envs`` envs with ``act(obs [N, o]) -> [N, a]``.

    Every env is stepped for ``episode_length`` steps; rewards after an env terminates are
    masked out.
    """
    physics = env.reset(key).physics

    def step(carry, _):
        physics, returns, lengths, alive = carry
        physics = env.step_physics(physics, act(physics.obs))
        returns = returns + jnp.where(alive, physics.reward, 0.0)
        lengths = lengths + alive.astype(jnp.int32)
        alive = alive & (physics.done == 0)
        return (physics, returns, lengths, alive), None

    n = env.num_envs
    init = (physics, jnp.zeros((n,), jnp.float32), jnp.zeros((n,), jnp.int32), jnp.ones((n,), bool))
    (_, returns, lengths, _), _ = jax.lax.scan(step, init, None, length=env.episode_length)
    return EpisodeStats(returns=returns, lengths=lengths)
