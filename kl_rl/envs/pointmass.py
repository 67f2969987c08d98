"""A tiny 2-D point-mass task: a fast, fully known env for tests and smoke runs.

Observation: position (2) and velocity (2). Action: force in [-1, 1]^2. Reward: minus the
distance to the origin. The episode terminates when the point leaves the box |x|_inf > 2, so the
env exercises termination as well as time-limit truncation. Not a benchmark.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kl_rl.envs import _import_brax

_import_brax()  # quietly, before brax.envs.base loads the package
from brax.envs.base import Env, State  # noqa: E402

_DT = 0.1
_BOX = 2.0


class PointMass(Env):
    """Double integrator with damping; starts uniformly in [-1, 1]^2 at rest."""

    def reset(self, rng: jax.Array) -> State:
        pos = jax.random.uniform(rng, (2,), minval=-1.0, maxval=1.0)
        vel = jnp.zeros((2,))
        obs = jnp.concatenate([pos, vel])
        zero = jnp.zeros((), jnp.float32)
        return State(pipeline_state=obs, obs=obs, reward=zero, done=zero, metrics={})

    def step(self, state: State, action: jax.Array) -> State:
        pos, vel = state.pipeline_state[:2], state.pipeline_state[2:]
        action = jnp.clip(action, -1.0, 1.0)
        vel = 0.9 * vel + _DT * action
        pos = pos + _DT * vel
        obs = jnp.concatenate([pos, vel])
        reward = -jnp.linalg.norm(pos)
        done = (jnp.max(jnp.abs(pos)) > _BOX).astype(jnp.float32)
        return state.replace(pipeline_state=obs, obs=obs, reward=reward, done=done)

    @property
    def observation_size(self) -> int:
        return 4

    @property
    def action_size(self) -> int:
        return 2

    @property
    def backend(self) -> str:
        return "none"


def homing_policy(obs: jax.Array) -> jax.Array:
    """A decent scripted controller (push toward the origin, damp the velocity): the "expert" of
    the tests' and the quick experiments' demonstrations. obs [N, 4] -> action [N, 2]."""
    return jnp.clip(-2.0 * obs[:, :2] - 0.5 * obs[:, 2:], -1.0, 1.0)
