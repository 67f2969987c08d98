"""The SAC update wired to parameters: targets, regression, entropy tuning."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_rl.buffer import Transition
from kl_rl.config import HParams, TrainConfig
from kl_rl.sac import SAC

CFG = TrainConfig(env="pointmass", hidden_sizes=(32, 32)).validate()


@pytest.fixture(scope="module")
def sac() -> SAC:
    return SAC(CFG, obs_size=3, action_size=2)


@pytest.fixture(scope="module")
def batch() -> Transition:
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    return Transition(
        obs=jax.random.normal(k1, (64, 3)), action=jax.random.uniform(k2, (64, 2), minval=-1, maxval=1),
        reward=jax.random.normal(k3, (64,)), next_obs=jax.random.normal(k1, (64, 3)) + 1.0,
        terminated=jnp.zeros(64),
    )


@pytest.fixture(scope="module")
def update(sac):
    return jax.jit(sac.update)


def _tree_allclose(a, b):
    return all(np.allclose(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_target_critics_follow_tau(sac, batch, update):
    agent = sac.init(jax.random.key(0), HParams.create())
    copied, _ = update(agent, HParams.create(tau=1.0), batch, jax.random.key(2))
    assert _tree_allclose(copied.target_critic_params, copied.critic_params)
    frozen, _ = update(agent, HParams.create(tau=0.0), batch, jax.random.key(2))
    assert _tree_allclose(frozen.target_critic_params, agent.target_critic_params)
    assert not _tree_allclose(frozen.critic_params, agent.critic_params)


def test_critics_regress_on_reward_when_gamma_is_zero(sac, batch, update):
    hparams = HParams.create(gamma=0.0, critic_lr=3e-3)
    agent = sac.init(jax.random.key(0), hparams)
    first = None
    for i in range(300):
        agent, metrics = update(agent, hparams, batch, jax.random.key(i))
        first = first if first is not None else float(metrics["critic_loss"])
    q = sac.critics.apply(agent.critic_params, batch.obs, batch.action)
    assert float(metrics["critic_loss"]) < 0.1 * first
    np.testing.assert_allclose(q, jnp.broadcast_to(batch.reward, q.shape), atol=0.3)


def test_alpha_falls_when_entropy_is_above_target(sac, batch, update):
    hparams = HParams.create(init_alpha=1.0)
    agent = sac.init(jax.random.key(0), hparams)
    new, metrics = update(agent, hparams, batch, jax.random.key(3))
    assert float(metrics["entropy"]) > sac.target_entropy(hparams) == -sac.action_size
    assert float(new.log_alpha) < float(agent.log_alpha)
    for name in ("critic_loss", "actor_loss", "alpha_loss", "entropy", "q_mean"):
        assert np.isfinite(metrics[name])


def test_entropy_per_dim_sets_the_temperature_target(sac, batch, update):
    # The same policy and batch: a target above its entropy makes the temperature rise instead.
    hparams = HParams.create(init_alpha=1.0, entropy_per_dim=5.0)
    agent = sac.init(jax.random.key(0), hparams)
    new, metrics = update(agent, hparams, batch, jax.random.key(3))
    assert float(metrics["entropy"]) < float(sac.target_entropy(hparams)) == 5.0 * sac.action_size
    assert float(new.log_alpha) > float(agent.log_alpha)


def test_critic_warmup_update_moves_only_the_critics(sac, batch, update):
    """learn_actor False (the critic warm-up): critics and targets learn, actor and temperature wait."""
    hparams = HParams.create()
    agent = sac.init(jax.random.key(0), hparams)
    held, _ = jax.jit(sac.update)(agent, hparams, batch, jax.random.key(2), learn_actor=jnp.bool_(False))
    assert _tree_allclose(held.actor_params, agent.actor_params)
    assert _tree_allclose(held.actor_opt_state, agent.actor_opt_state)
    assert float(held.log_alpha) == float(agent.log_alpha)
    assert not _tree_allclose(held.critic_params, agent.critic_params)
    both, _ = update(agent, hparams, batch, jax.random.key(2))
    assert _tree_allclose(held.critic_params, both.critic_params)  # the critic step is the same either way
    assert not _tree_allclose(both.actor_params, agent.actor_params)
