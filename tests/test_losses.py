"""SAC losses and the tanh-Gaussian against hand-computed values and closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from kl_rl import losses
from kl_rl.distributions import gaussian_log_prob, sample_tanh_gaussian, tanh_log_det_jacobian


def test_soft_td_target_bootstraps_unless_terminated():
    y = losses.soft_td_target(
        reward=jnp.array([1.0, 2.0]), terminated=jnp.array([0.0, 1.0]), next_q=jnp.array([10.0, 10.0]),
        next_log_prob=jnp.array([-1.0, -1.0]), alpha=jnp.float32(0.5), gamma=jnp.float32(0.9),
    )
    # 1 + 0.9 * (10 - 0.5 * -1) = 10.45 ; terminated: just the reward.
    np.testing.assert_allclose(y, [10.45, 2.0], rtol=1e-6)


def test_critic_loss_value_and_gradient():
    q = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    y = jnp.array([1.0, 1.0])
    # critic 1: errors (0, 1) -> mse 0.5 ; critic 2: errors (2, 3) -> mse 6.5 ; half the sum.
    np.testing.assert_allclose(losses.critic_loss(q, y), 3.5)
    grad_q, grad_y = jax.grad(losses.critic_loss, argnums=(0, 1))(q, y)
    np.testing.assert_allclose(grad_q, (q - y) / 2)
    np.testing.assert_allclose(grad_y, 0.0)  # the target is a constant


def test_actor_loss():
    value = losses.actor_loss(jnp.array([-1.0, 1.0]), jnp.array([2.0, 4.0]), jnp.float32(0.5))
    np.testing.assert_allclose(value, np.mean([0.5 * -1 - 2, 0.5 * 1 - 4]))


def test_temperature_loss_lowers_alpha_when_entropy_exceeds_target():
    log_prob = jnp.array([-2.0, -4.0])  # entropy estimate 3
    value, grad = jax.value_and_grad(losses.temperature_loss)(jnp.float32(0.3), log_prob, -6.0)
    np.testing.assert_allclose(value, -0.3 * -9.0, rtol=1e-6)
    assert grad > 0  # gradient descent decreases log_alpha
    _, grad_low = jax.value_and_grad(losses.temperature_loss)(jnp.float32(0.3), log_prob, 5.0)
    assert grad_low < 0


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    with jax.enable_x64(True):
        mean = jnp.array([[0.3, -1.2], [2.0, 0.0]], jnp.float64)
        log_std = jnp.array([[-0.5, 0.2], [0.0, -1.0]], jnp.float64)
        action, log_prob = sample_tanh_gaussian(jax.random.key(0), mean, log_std)
        u = np.arctanh(np.asarray(action))
        expected = (stats.norm.logpdf(u, np.asarray(mean), np.exp(np.asarray(log_std)))
                    - np.log1p(-np.asarray(action) ** 2)).sum(-1)
        np.testing.assert_allclose(log_prob, expected, rtol=1e-6)  # arctanh of a near-saturated a


def test_tanh_log_det_is_stable_for_saturated_actions():
    u = jnp.array([[0.0, 5.0, 20.0, -40.0]], jnp.float32)
    value = tanh_log_det_jacobian(u)
    assert np.isfinite(value).all()
    # log(1 - tanh(u)^2) ~ log 4 - 2|u| for large |u|.
    per_dim = [np.log(1 - np.tanh(0.0) ** 2), np.log(1 - np.tanh(5.0) ** 2), np.log(4) - 40, np.log(4) - 80]
    np.testing.assert_allclose(value, [sum(per_dim)], rtol=1e-4)


def test_gaussian_log_prob_matches_scipy():
    x, m, s = np.array([0.4, -1.0]), np.array([0.0, 0.5]), np.array([0.7, 2.0])
    np.testing.assert_allclose(
        gaussian_log_prob(jnp.array(x), jnp.array(m), jnp.log(jnp.array(s))),
        stats.norm.logpdf(x, m, s).sum(), rtol=1e-5,
    )


def test_mean_action_loss_is_the_squared_distance_in_prior_stds():
    action = jnp.array([[0.5, -0.2], [0.9, 0.0]])
    mean0 = jnp.array([[0.3, -0.2], [1.4, 0.1]])  # 1.4 lies outside the box: the target is 0.99
    std0 = jnp.array([[0.1, 0.2], [0.5, 0.05]])
    expected = np.mean([0.5 * (0.2 / 0.1) ** 2, 0.5 * ((0.09 / 0.5) ** 2 + (0.1 / 0.05) ** 2)])
    np.testing.assert_allclose(losses.mean_action_loss(action, mean0, std0), expected, rtol=1e-5)
    np.testing.assert_allclose(losses.mean_action_loss(jnp.clip(mean0, -0.99, 0.99), mean0, std0), 0.0, atol=1e-7)
