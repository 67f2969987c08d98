"""What the actor is regularized by, chosen once when the learner is built (one per algo):

- ``EntropyPenalty`` (sac, bc-sac): SAC's entropy bonus, log pi(a|s) weighted by a temperature
  tuned toward a target entropy; pretraining (bc-sac) is behavioral cloning.
- ``KLPenalty`` (nppac, kl): the one-sample KL log pi(a|s) - log pi0(a|s) toward the behavioral
  prior, with the fixed weight ``hparams.alpha`` (docs/method.md, equations 2-4), plus the
  mean-action term; pretraining minimizes the same regularizer on demonstration states.

``kl_rl.sac.SAC`` calls these hooks in a fixed order inside one update, so the algorithm is the
composition of the SAC update with one penalty. The other axis of an algorithm, where its
minibatches come from, belongs to the trainer (``Trainer._updates``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from kl_rl import losses, priors
from kl_rl.distributions import deterministic_action, sample_tanh_gaussian, tanh_gaussian_log_prob

Moments = Any  # (mean0, scale0, next_mean0, next_scale0, std0), each [B, a]; None without a prior


class EntropyPenalty:
    """SAC's entropy bonus with automatic temperature tuning."""

    uses_prior = False
    metric_names: tuple[str, ...] = ("alpha_loss",)

    def __init__(self, sac: Any):
        self.sac = sac

    def weight(self, agent: Any, hparams: Any) -> jax.Array:
        return jnp.exp(agent.log_alpha)

    def moments(self, batch: Any, prior: Any) -> Moments:
        return None

    def next_penalty(self, next_log_prob: jax.Array, next_action: jax.Array, moments: Moments) -> jax.Array:
        return next_log_prob

    def target_weight(self, alpha: jax.Array) -> jax.Array:
        return alpha

    def actor_penalty(self, log_prob: jax.Array, action: jax.Array, moments: Moments) -> jax.Array:
        """The per-state penalty [B] of the actor loss alpha * penalty - Q."""
        return log_prob

    def extra_actor_loss(self, mean: jax.Array, moments: Moments, alpha: jax.Array) -> jax.Array | None:
        """A term added to the actor loss (None: nothing)."""
        return None

    def finish(self, agent: Any, hparams: Any, log_prob: jax.Array, penalty: jax.Array,
               moments: Moments) -> tuple[jax.Array, Any, dict[str, jax.Array]]:
        """The temperature step: (log_alpha, its optimizer state, metrics)."""
        alpha_loss, alpha_grad = jax.value_and_grad(losses.temperature_loss)(
            agent.log_alpha, log_prob, self.sac.target_entropy(hparams))
        log_alpha, alpha_opt_state = self.sac.apply_adam(agent.log_alpha, alpha_grad, agent.alpha_opt_state,
                                                         hparams.alpha_lr)
        return log_alpha, alpha_opt_state, {"alpha_loss": alpha_loss}

    def pretrain_loss(self, mean: jax.Array, log_std: jax.Array, actions: jax.Array, key: jax.Array,
                      prior_moments: Any) -> jax.Array:
        """Behavioral cloning: the NLL of the demonstrated actions."""
        return losses.behavior_cloning_loss(tanh_gaussian_log_prob(actions, mean, log_std))


class KLPenalty:
    """The KL toward pi0 with a fixed weight, and the mean-action term."""

    uses_prior = True
    metric_names: tuple[str, ...] = ("kl_mean", "kl_max", "prior_std_mean", "prior_std_min")

    def __init__(self, sac: Any):
        self.sac = sac
        self.cfg = sac.cfg

    def weight(self, agent: Any, hparams: Any) -> jax.Array:
        return hparams.alpha

    def moments(self, batch: Any, prior: Any) -> Moments:
        """pi0's (mean, scale) at s and s': stored with the transition, or predicted."""
        if batch.prior is not None:  # stored with the transition: [B, 4, a]
            mean0, std0, next_mean0, next_std0 = (batch.prior[:, i] for i in range(4))
        else:
            mean0, std0 = priors.predict(prior, batch.obs)
            next_mean0, next_std0 = priors.predict(prior, batch.next_obs)
        return mean0, self.sac.prior_scale(std0), next_mean0, self.sac.prior_scale(next_std0), std0

    def next_penalty(self, next_log_prob: jax.Array, next_action: jax.Array, moments: Moments) -> jax.Array:
        _, _, next_mean0, next_scale0, _ = moments
        return losses.kl_estimate(next_log_prob, self.prior_log_prob(next_action, next_mean0, next_scale0))

    def target_weight(self, alpha: jax.Array) -> jax.Array:
        """The KL is charged in the TD target only where the env's preset (or the option) says so."""
        return alpha if self.cfg.charges_kl_in_target else jnp.zeros_like(alpha)

    def prior_log_prob(self, action: jax.Array, mean0: jax.Array, scale0: jax.Array) -> jax.Array:
        """log pi0(a|s), of pi0 truncated to the action box where ``prior_truncated`` asks. [B]"""
        score = losses.truncated_prior_log_prob if self.cfg.prior_truncated else losses.prior_log_prob
        return score(action, mean0, scale0)

    def actor_penalty(self, log_prob: jax.Array, action: jax.Array, moments: Moments) -> jax.Array:
        return losses.kl_estimate(log_prob, self.prior_log_prob(action, moments[0], moments[1]))

    def extra_actor_loss(self, mean: jax.Array, moments: Moments, alpha: jax.Array) -> jax.Array | None:
        """alpha x the mean-action term (``mean_action_weight``; None when 0)."""
        if not self.cfg.mean_action_weight:
            return None
        return alpha * self.cfg.mean_action_weight * losses.mean_action_loss(
            deterministic_action(mean), moments[0], moments[1])

    def finish(self, agent: Any, hparams: Any, log_prob: jax.Array, penalty: jax.Array,
               moments: Moments) -> tuple[jax.Array, Any, dict[str, jax.Array]]:
        """alpha is fixed; the KL and the prior's std are the diagnostics."""
        std0 = moments[4]
        return agent.log_alpha, agent.alpha_opt_state, {
            "kl_mean": jnp.mean(penalty), "kl_max": jnp.max(penalty),
            "prior_std_mean": jnp.mean(std0), "prior_std_min": jnp.min(std0)}

    def pretrain_loss(self, mean: jax.Array, log_std: jax.Array, actions: jax.Array, key: jax.Array,
                      prior_moments: Any) -> jax.Array:
        """The actor loss's penalty terms without Q (alpha 1): KL(pi || pi0) on the demonstration
        states plus the mean-action term."""
        mean0, std0 = prior_moments
        moments = (mean0, self.sac.prior_scale(std0))
        action, log_prob = sample_tanh_gaussian(key, mean, log_std)
        loss = jnp.mean(self.actor_penalty(log_prob, action, moments))
        extra = self.extra_actor_loss(mean, moments, 1.0)
        return loss if extra is None else loss + extra


PENALTIES: dict[str, type] = {"sac": EntropyPenalty, "bc-sac": EntropyPenalty, "rlpd": EntropyPenalty,
                              "nppac": KLPenalty, "kl": KLPenalty}
