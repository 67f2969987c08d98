"""Vectorized episodic wrapper over a single-instance Brax env.

Why not Brax's own ``EpisodeWrapper`` + ``AutoResetWrapper``: those overwrite the final
observation of an episode with the reset observation, and reset every env to the same stored
initial state. SAC needs the true final observation to bootstrap through a time-limit
truncation, and a fresh random initial state per episode. This wrapper keeps both, and keeps
``terminated`` (the MDP ended) separate from ``truncated`` (the time limit cut it).
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp

from kl_rl.envs import _import_brax

_import_brax()  # quietly, before brax.envs.base loads the package
from brax.envs.base import Env, State  # noqa: E402
from flax import struct  # noqa: E402


@struct.dataclass
class VecEnvState:
    """Batched state of ``num_envs`` episodic envs."""

    physics: State  # brax State with a leading [num_envs] axis on every leaf
    steps: jax.Array  # [num_envs] int32, steps taken in the current episode
    episode_return: jax.Array  # [num_envs] float32, return so far in the current episode
    key: jax.Array  # PRNG key for the next resets
    goal_steps: jax.Array | None = None  # [num_envs] int32, steps at the goal so far (envs with a success rule)

    @property
    def obs(self) -> jax.Array:  # [num_envs, obs_size]
        return self.physics.obs


@struct.dataclass
class StepOutput:
    """What one vectorized step produced, before any auto-reset is applied."""

    next_obs: jax.Array  # [num_envs, obs_size] true observation after the action
    reward: jax.Array  # [num_envs]
    terminated: jax.Array  # [num_envs] bool, the MDP reached a terminal state
    truncated: jax.Array  # [num_envs] bool, the time limit ended a non-terminal episode
    episode_return: jax.Array  # [num_envs] return of the episode, valid where done
    episode_length: jax.Array  # [num_envs] int32 length of the episode, valid where done
    episode_success: jax.Array | None = None  # [num_envs] bool, valid where done (envs with a success rule)

    @property
    def done(self) -> jax.Array:  # [num_envs] bool
        return self.terminated | self.truncated


def _strong(tree: Any) -> Any:
    """Casts every leaf to a strongly typed array of its own dtype.

    Brax's ``reset`` returns weak-typed scalars where ``step`` returns strong ones; a jitted
    function fed both would compile twice (docs/method.md section 6: ~11 s on the second call).
    """
    return jax.tree.map(lambda x: jax.lax.convert_element_type(jnp.asarray(x), jnp.asarray(x).dtype), tree)


class VecEnv:
    """``num_envs`` copies of a Brax env, stepped with ``jax.vmap``, with auto-reset.

    Stateless Python object (static configuration); all state lives in ``VecEnvState``.
    """

    def __init__(self, env: Env, name: str, num_envs: int, episode_length: int):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        self.env = env
        self.name = name
        # An env with a success rule names its per-step goal metric (0/1) and how many steps at the
        # goal make an episode a success (the door: more than 25); others have neither.
        self.success_metric: str | None = getattr(env, "success_metric", None)
        self.success_steps: int = getattr(env, "success_steps", 0)
        self.num_envs = num_envs
        self.episode_length = episode_length

    @functools.cached_property
    def obs_size(self) -> int:
        # Brax's ``observation_size`` runs an eager reset: op-by-op MJX dispatch, ~30 s on CPU.
        # Tracing the reset abstractly gives the same shape in milliseconds.
        shape = jax.eval_shape(self.env.reset, jax.random.key(0)).obs.shape
        return int(shape[-1])

    @property
    def action_size(self) -> int:
        return int(self.env.action_size)

    def _reset_physics(self, key: jax.Array) -> State:
        keys = jax.random.split(key, self.num_envs)
        return _strong(jax.vmap(self.env.reset)(keys))

    def reset(self, key: jax.Array) -> VecEnvState:
        """Starts ``num_envs`` fresh episodes."""
        key_physics, key_next = jax.random.split(key)
        physics = self._reset_physics(key_physics)
        zeros = jnp.zeros((self.num_envs,), jnp.int32)
        return VecEnvState(physics=physics, steps=zeros, episode_return=jnp.zeros((self.num_envs,), jnp.float32),
                           key=key_next, goal_steps=zeros if self.success_metric else None)

    def step_physics(self, physics: State, action: jax.Array) -> State:
        """One vmapped step of the underlying envs, without episode bookkeeping or reset."""
        chex.assert_shape(action, (self.num_envs, self.action_size))
        return _strong(jax.vmap(self.env.step)(physics, action))

    def step(self, state: VecEnvState, action: jax.Array) -> tuple[VecEnvState, StepOutput]:
        """Steps every env; envs whose episode ended restart from a fresh random state."""
        physics = self.step_physics(state.physics, action)
        reward = physics.reward.astype(jnp.float32)  # [num_envs]
        steps = state.steps + 1
        terminated = physics.done > 0
        truncated = (steps >= self.episode_length) & ~terminated
        done = terminated | truncated
        episode_return = state.episode_return + reward
        goal_steps = None
        if self.success_metric:
            goal_steps = state.goal_steps + (physics.metrics[self.success_metric] > 0).astype(jnp.int32)
        out = StepOutput(next_obs=physics.obs, reward=reward, terminated=terminated, truncated=truncated,
                         episode_return=episode_return, episode_length=steps,
                         episode_success=None if goal_steps is None else goal_steps > self.success_steps)

        key_reset, key_next = jax.random.split(state.key)

        def reset_done(current: State) -> State:
            fresh = self._reset_physics(key_reset)

            def pick(new: jax.Array, old: jax.Array) -> jax.Array:
                mask = done.reshape(done.shape + (1,) * (old.ndim - 1))
                return jnp.where(mask, new.astype(old.dtype), old)

            return jax.tree.map(pick, fresh, current)

        # Resets are rare (every episode_length steps), so a real branch skips the reset cost on
        # most steps. Under vmap over runs this becomes a select and both sides are computed.
        physics = jax.lax.cond(jnp.any(done), reset_done, lambda p: p, physics)
        new_state = VecEnvState(physics=physics, steps=jnp.where(done, 0, steps),
                                episode_return=jnp.where(done, 0.0, episode_return), key=key_next,
                                goal_steps=None if goal_steps is None else jnp.where(done, 0, goal_steps))
        return new_state, out
