"""Vectorized envs: shapes, finite values, auto-reset, and truncation kept apart from termination."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_rl.envs import ENV_NAMES, UnknownEnvError, make_env


def _rollout(env, action, steps, seed=0):
    """Steps ``env`` with a constant action inside one scan; returns stacked outputs."""

    @jax.jit
    def go(key):
        state = env.reset(key)

        def body(state, _):
            new_state, out = env.step(state, jnp.broadcast_to(action, (env.num_envs, env.action_size)))
            return new_state, (out, new_state.obs, new_state.steps)

        return jax.lax.scan(body, state, None, length=steps)

    return go(jax.random.key(seed))


def test_unknown_env_is_one_line_error_listing_known_names():
    with pytest.raises(UnknownEnvError) as err:
        make_env("cheetah", 2)
    message = str(err.value)
    assert "\n" not in message and "'cheetah'" in message
    for name in ENV_NAMES:
        assert name in message


@pytest.mark.parametrize(
    "name, obs_size, action_size",
    [("halfcheetah", 17, 6), ("hopper", 11, 3), ("walker2d", 17, 6), ("ant", 27, 8), ("pointmass", 4, 2)],
)
def test_sizes(name, obs_size, action_size):
    env = make_env(name, 3)
    assert (env.obs_size, env.action_size, env.num_envs) == (obs_size, action_size, 3)


def test_truncation_auto_reset_and_true_final_obs():
    env = make_env("pointmass", num_envs=3, episode_length=5)
    _, (out, obs_after, steps_after) = _rollout(env, jnp.zeros(2), steps=12)
    truncated, terminated = np.asarray(out.truncated), np.asarray(out.terminated)
    assert not terminated.any()
    # Truncation exactly at the time limit, in every env, then again 5 steps later.
    np.testing.assert_array_equal(truncated.any(axis=1), [i in (4, 9) for i in range(12)])
    np.testing.assert_array_equal(np.asarray(out.episode_length)[4], [5, 5, 5])
    np.testing.assert_array_equal(np.asarray(steps_after)[4], [0, 0, 0])
    # After a reset the env's observation is a fresh start (at rest), while the transition keeps
    # the true final observation for bootstrapping.
    np.testing.assert_allclose(np.asarray(obs_after)[4][:, 2:], 0.0)
    assert not np.allclose(np.asarray(out.next_obs)[4], np.asarray(obs_after)[4])
    # A fresh random start per episode, not a replay of the first one.
    assert not np.allclose(np.asarray(obs_after)[4][:, :2], np.asarray(obs_after)[9][:, :2])


def test_termination_is_not_truncation():
    env = make_env("pointmass", num_envs=2, episode_length=1000)
    _, (out, _, _) = _rollout(env, jnp.ones(2), steps=80)
    terminated, truncated = np.asarray(out.terminated), np.asarray(out.truncated)
    assert terminated.any(), "constant full force must push the point out of the box"
    assert not truncated.any()
    assert not (terminated & truncated).any()
    first = terminated.argmax(axis=0)
    np.testing.assert_array_equal(np.asarray(out.episode_length)[first, [0, 1]], first + 1)


def test_mjx_halfcheetah_steps_finite_and_truncates():
    env = make_env("halfcheetah", num_envs=2, episode_length=3)
    _, (out, obs_after, _) = _rollout(env, jnp.full(6, 0.5), steps=4)
    assert out.next_obs.shape == (4, 2, 17)
    assert np.isfinite(np.asarray(out.next_obs)).all() and np.isfinite(np.asarray(out.reward)).all()
    np.testing.assert_array_equal(np.asarray(out.truncated)[:, 0], [False, False, True, False])
    assert not np.asarray(out.terminated).any()
    np.testing.assert_allclose(
        np.asarray(out.episode_return)[2], np.asarray(out.reward)[:3].sum(axis=0), rtol=1e-5
    )


def test_rollout_records_the_env_metrics_it_is_asked_for():
    from kl_rl.rollout import rollout

    env = make_env("halfcheetah", num_envs=2, episode_length=3)
    act = lambda obs, _: jnp.full((2, 6), 0.5)  # noqa: E731
    plain = jax.jit(lambda k: rollout(env, act, k))(jax.random.key(0))
    terms = jax.jit(lambda k: rollout(env, act, k, ("reward_run", "reward_ctrl")))(jax.random.key(0))
    assert plain.metrics == {}  # evaluation carries nothing extra
    assert terms.metrics["reward_run"].shape == terms.metrics["reward_ctrl"].shape == (3, 2)
    np.testing.assert_allclose(terms.metrics["reward_ctrl"], -0.1 * 6 * 0.25, rtol=1e-6)  # 0.1 |a|^2
    np.testing.assert_allclose(terms.rewards, terms.metrics["reward_run"] + terms.metrics["reward_ctrl"], rtol=1e-5)
    np.testing.assert_array_equal(terms.rewards, plain.rewards)
