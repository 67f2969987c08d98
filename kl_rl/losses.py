"""SAC losses as small pure functions of arrays (docs/method.md, section 1).

Each takes already-computed network outputs, so each can be checked against a hand-computed
case; ``kl_rl.sac`` wires them to parameters and gradients. ``log_prob`` is log pi(a|s) of a
reparameterized sample; the KL variants pass log pi(a|s) - log pi0(a|s) in its place (the
one-sample KL estimate), which turns the entropy bonus into the KL penalty of N-PPAC.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kl_rl.distributions import gaussian_log_prob


def soft_td_target(
    reward: jax.Array,
    terminated: jax.Array,
    next_q: jax.Array,
    next_log_prob: jax.Array,
    alpha: jax.Array,
    gamma: jax.Array,
) -> jax.Array:
    """Critic target y = r + gamma (1 - terminated) (min_i Qbar_i(s', a') - alpha log pi(a'|s')).

    ``next_q`` is already the minimum over the target critics. A time-limit truncation is not
    ``terminated``: the target bootstraps through it. All inputs [B] (alpha, gamma scalars).
    """
    return reward + gamma * (1.0 - terminated) * (next_q - alpha * next_log_prob)


def critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """Sum over critics of half the mean squared TD error: sum_i mean_b (Q_i - y)^2 / 2.

    q: [num_critics, B]; target: [B] (treated as a constant).
    """
    td_error = q - jax.lax.stop_gradient(target)[None, :]
    return 0.5 * jnp.sum(jnp.mean(td_error**2, axis=-1))


def actor_loss(log_prob: jax.Array, q: jax.Array, alpha: jax.Array) -> jax.Array:
    """mean(alpha * log pi(a|s) - min_i Q_i(s, a)) with a ~ pi(.|s) reparameterized. [B] -> []."""
    return jnp.mean(alpha * log_prob - q)


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float | jax.Array) -> jax.Array:
    """Automatic entropy tuning: -log_alpha * mean(log pi(a|s) + target_entropy).

    Its gradient raises alpha when the policy entropy is below ``target_entropy`` and lowers
    it above. ``log_prob`` [B] is a constant here.
    """
    return -log_alpha * jnp.mean(jax.lax.stop_gradient(log_prob) + target_entropy)


def prior_log_prob(action: jax.Array, prior_mean: jax.Array, prior_std: jax.Array) -> jax.Array:
    """log pi0(a|s) of a diagonal Gaussian prior scored at the (squashed) action: [B, d] -> [B].

    Its gradient in a is -(a - mu0) / sigma0^2: the source of the 1/sigma0^2 blow-up of the KL
    term when a parametric prior's std collapses (the paper's Proposition 1)."""
    return gaussian_log_prob(action, prior_mean, jnp.log(prior_std))


def log_box_mass(prior_mean: jax.Array, prior_std: jax.Array) -> jax.Array:
    """log P(a in [-1, 1]^d) under the diagonal Gaussian N(mu0, sigma0^2): [B, d] -> [B].

    Per dimension log(Phi(b) - Phi(a)) with a = (-1 - mu0)/sigma0, b = (1 - mu0)/sigma0, computed
    on the side of zero where ``log_ndtr`` keeps its precision (reflected when mu0 < 0), so that a
    mean far outside the box gives a large finite negative number, not -inf."""
    lo, hi = (-1.0 - prior_mean) / prior_std, (1.0 - prior_mean) / prior_std
    flip = prior_mean < 0.0  # Phi(b) - Phi(a) = Phi(-a) - Phi(-b): keep the interval's bulk below 0
    lo, hi = jnp.where(flip, -hi, lo), jnp.where(flip, -lo, hi)
    log_hi, log_lo = jax.scipy.special.log_ndtr(hi), jax.scipy.special.log_ndtr(lo)
    per_dim = log_hi + jnp.log1p(-jnp.exp(jnp.minimum(log_lo - log_hi, -1e-30)))
    return jnp.sum(per_dim, axis=-1)


def truncated_prior_log_prob(action: jax.Array, prior_mean: jax.Array, prior_std: jax.Array) -> jax.Array:
    """log pi0(a|s) of pi0 truncated to the action box: the Gaussian's log density minus
    ``log_box_mass``. [B, d] -> [B]. Its gradient in a is the untruncated one."""
    return prior_log_prob(action, prior_mean, prior_std) - jax.lax.stop_gradient(log_box_mass(prior_mean, prior_std))


def kl_estimate(log_prob: jax.Array, prior_log_prob: jax.Array) -> jax.Array:
    """One-sample estimate of KL(pi(.|s) || pi0(.|s)) at a ~ pi(.|s): log pi(a|s) - log pi0(a|s).
    Unbiased for the KL; each sample can be negative. [B] -> [B]."""
    return log_prob - prior_log_prob


def mean_action_loss(action: jax.Array, prior_mean: jax.Array, prior_std: jax.Array,
                     edge: float = 1e-2) -> jax.Array:
    """mean_s 1/2 sum_d ((a_d - clip(mu0_d)) / sigma0_d)^2: how far, in pi0's std, the actor's
    deterministic action a = tanh(mean) [B, d] lies from pi0's mean pulled ``edge`` inside the
    box (tanh cannot reach past it). Zero when the evaluated action is pi0's mean. [B, d] -> []."""
    target = jnp.clip(prior_mean, -1.0 + edge, 1.0 - edge)
    return jnp.mean(0.5 * jnp.sum(((action - target) / prior_std) ** 2, axis=-1))


def behavior_cloning_loss(demo_log_prob: jax.Array) -> jax.Array:
    """Negative log-likelihood of the demonstrated actions under pi: -mean log pi(a_D|s). [B] -> []."""
    return -jnp.mean(demo_log_prob)
