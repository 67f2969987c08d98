"""Whole-episode rollouts of a fixed policy in ``num_envs`` parallel envs (no auto-reset).

Used for deterministic evaluation and for collecting demonstrations: one episode per env, all
stepped together in one ``lax.scan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from kl_rl.envs import VecEnv

# act(obs [N, o], key) -> action [N, a]
Policy = Callable[[jax.Array, jax.Array], jax.Array]


@struct.dataclass
class Episodes:
    """Time-major record of one episode per env; ``valid`` marks steps inside the episode."""

    observations: jax.Array  # [T, N, obs_size] observation the action was taken in
    actions: jax.Array  # [T, N, action_size]
    rewards: jax.Array  # [T, N]
    terminated: jax.Array  # [T, N] bool, the episode's MDP ended at this step
    valid: jax.Array  # [T, N] bool, the step belongs to the episode (False after its end)
    metrics: dict[str, jax.Array] = struct.field(default_factory=dict)  # name -> [T, N], as asked

    @property
    def lengths(self) -> jax.Array:  # [N] int32
        return jnp.sum(self.valid, axis=0, dtype=jnp.int32)

    @property
    def returns(self) -> jax.Array:  # [N] undiscounted return of each episode
        return jnp.sum(jnp.where(self.valid, self.rewards, 0.0), axis=0)

    def successes(self, env: VecEnv) -> jax.Array:
        """[N] bool: the episode met ``env``'s success rule (its goal metric, recorded through
        ``metric_names``, held on more than ``env.success_steps`` of the episode's steps)."""
        return successes(self.metrics[env.success_metric], self.valid, env.success_steps)


def successes(goal: jax.Array, valid: jax.Array, success_steps: int) -> jax.Array:
    """The success rule: goal [T, N] (> 0 where the goal holds) on more than ``success_steps`` of
    each episode's valid steps. Returns [N] bool. (VecEnv applies the same count step by step.)"""
    return jnp.sum(jnp.where(valid, goal > 0, False), axis=0) > success_steps


def rollout(env: VecEnv, act: Policy, key: jax.Array, metric_names: tuple[str, ...] = (),
            record: Callable[[Any], dict[str, jax.Array]] | None = None) -> Episodes:
    """Runs one episode in each of ``env.num_envs`` envs for up to ``episode_length`` steps.

    Steps after an env terminates are still simulated (the batch moves in lockstep) but marked
    invalid, so they count toward nothing. ``metric_names``: the Brax env metrics (e.g. its reward
    terms) to record at every step as well; none by default, so evaluation carries nothing extra.
    ``record(physics)``: more values to keep in ``metrics``, taken from the state each action is
    taken in (e.g. the joint positions, to replay the episode).
    """
    key_reset, key_act = jax.random.split(key)
    physics = env.reset(key_reset).physics

    def step(carry, key_t):
        physics, alive = carry
        obs = physics.obs
        kept = record(physics) if record is not None else {}
        action = act(obs, key_t)
        physics = env.step_physics(physics, action)
        terminated = alive & (physics.done > 0)
        step_record = Episodes(observations=obs, actions=action, rewards=physics.reward, terminated=terminated,
                               valid=alive, metrics={**{n: physics.metrics[n] for n in metric_names}, **kept})
        return (physics, alive & ~terminated), step_record

    alive = jnp.ones((env.num_envs,), bool)
    keys = jax.random.split(key_act, env.episode_length)
    _, episodes = jax.lax.scan(step, (physics, alive), keys)
    return episodes
