"""The SAC learner: networks, optimizer states and one jitted gradient update.

One update (Haarnoja et al. 2018, with the reference's settings): critics regress on the soft
TD target from the target critics, the actor minimizes alpha log pi - min Q under the critics
as they were before this update, alpha follows automatic entropy tuning, and the target critics
track the critics by Polyak averaging with rate tau.

With a behavioral prior pi0 (algos nppac and kl, docs/method.md section 1) log pi
becomes the one-sample KL estimate log pi - log pi0 in both the actor loss and the critic
target, alpha is the fixed ``hparams.alpha``, and pi0 is evaluated inside the update from the
prior pytree. ``pretrain_step`` fits the actor to pi0 (KL) or to the demonstrated actions
(behavioral cloning) before online training.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from kl_rl import losses, priors
from kl_rl.buffer import Transition
from kl_rl.config import HParams, TrainConfig
from kl_rl.distributions import deterministic_action, sample_tanh_gaussian, tanh_gaussian_log_prob
from kl_rl.networks import Actor, Critics

Params = Any


@struct.dataclass
class AgentState:
    """Everything the gradient update changes."""

    actor_params: Params
    critic_params: Params  # one MLP per critic (Critics_0..Critics_{n-1} submodules)
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    log_alpha: jax.Array  # [] log of the entropy temperature
    alpha_opt_state: optax.OptState


class SAC:
    """Static parts of the learner (modules, optimizer, sizes); methods are pure functions."""

    def __init__(self, cfg: TrainConfig, obs_size: int, action_size: int):
        self.cfg = cfg
        self.obs_size = obs_size
        self.action_size = action_size
        self.actor = Actor(cfg.hidden_sizes, action_size, cfg.log_std_min, cfg.log_std_max)
        self.critics = Critics(cfg.hidden_sizes, cfg.num_critics)
        # Adam without a learning rate: the rate is applied from HParams so a sweep can vmap it.
        self.optimizer = optax.scale_by_adam()
        self.uses_prior = cfg.uses_prior
        names = ["critic_loss", "actor_loss", "alpha", "entropy", "q_mean", "actor_grad_norm", "critic_grad_norm"]
        names += ["kl_mean", "kl_max", "prior_std_mean", "prior_std_min"] if self.uses_prior else ["alpha_loss"]
        # How each update metric combines over an epoch's updates.
        self.metric_reductions = {n: ("max" if n.endswith("_max") else "min" if n.endswith("_min") else "mean")
                                  for n in names}

    def target_entropy(self, hparams: HParams) -> jax.Array:
        """The entropy SAC's temperature is tuned toward: ``entropy_per_dim`` x action dimension."""
        return hparams.entropy_per_dim * self.action_size

    def prior_scale(self, std0: jax.Array) -> jax.Array:
        """The Gaussian scale pi0 is scored with: its std, or with ``prior_scale_is_variance`` its
        variance, as in the reference code (for comparison only)."""
        return std0**2 if self.cfg.prior_scale_is_variance else std0

    def init(self, key: jax.Array, hparams: HParams) -> AgentState:
        key_actor, key_critic = jax.random.split(key)
        obs = jnp.zeros((1, self.obs_size), jnp.float32)
        action = jnp.zeros((1, self.action_size), jnp.float32)
        actor_params = self.actor.init(key_actor, obs)
        critic_params = self.critics.init(key_critic, obs, action)
        log_alpha = jnp.log(hparams.init_alpha).astype(jnp.float32)
        return AgentState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            actor_opt_state=self.optimizer.init(actor_params),
            critic_opt_state=self.optimizer.init(critic_params),
            log_alpha=log_alpha,
            alpha_opt_state=self.optimizer.init(log_alpha),
        )

    def sample_action(self, actor_params: Params, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Stochastic action for data collection. obs [N, o] -> [N, a]."""
        mean, log_std = self.actor.apply(actor_params, obs)
        return sample_tanh_gaussian(key, mean, log_std)[0]

    def greedy_action(self, actor_params: Params, obs: jax.Array) -> jax.Array:
        """Deterministic action for evaluation. obs [N, o] -> [N, a]."""
        mean, _ = self.actor.apply(actor_params, obs)
        return deterministic_action(mean)

    def _apply_adam(self, params, grads, opt_state, lr):
        updates, opt_state = self.optimizer.update(grads, opt_state)
        params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
        return params, opt_state

    def update(
        self, agent: AgentState, hparams: HParams, batch: Transition, key: jax.Array, prior: Any = None,
        learn_actor: jax.Array | bool = True,
    ) -> tuple[AgentState, dict[str, jax.Array]]:
        """One gradient step on a minibatch (leaves [B, ...]). Returns new state and metrics.
        ``prior`` is the behavioral prior pytree (required exactly when the algo uses one).
        ``learn_actor`` False (a traced bool is fine) keeps the actor and the temperature as they
        are and updates only the critics: the critic warm-up of a pretrained actor."""
        if (prior is not None) != self.uses_prior:
            raise ValueError(f"algo {self.cfg.algo} {'needs' if self.uses_prior else 'takes no'} prior")
        key_next, key_pi = jax.random.split(key)
        alpha = hparams.alpha if self.uses_prior else jnp.exp(agent.log_alpha)

        # Critic target, from the target critics at a fresh next action.
        next_mean, next_log_std = self.actor.apply(agent.actor_params, batch.next_obs)
        next_action, next_log_prob = sample_tanh_gaussian(key_next, next_mean, next_log_std)
        next_q = self.critics.apply(agent.target_critic_params, batch.next_obs, next_action).min(0)
        if self.uses_prior:  # the entropy bonus becomes the KL penalty: log pi - log pi0
            if batch.prior is not None:  # stored with the transition: [B, 4, a]
                mean0, std0, next_mean0, next_std0 = (batch.prior[:, i] for i in range(4))
            else:
                mean0, std0 = priors.predict(prior, batch.obs)
                next_mean0, next_std0 = priors.predict(prior, batch.next_obs)
            scale0, next_scale0 = self.prior_scale(std0), self.prior_scale(next_std0)
            next_log_prob = losses.kl_estimate(next_log_prob,
                                               losses.prior_log_prob(next_action, next_mean0, next_scale0))
        target_alpha = alpha if (self.cfg.charges_kl_in_target or not self.uses_prior) else jnp.zeros_like(alpha)
        target = losses.soft_td_target(
            batch.reward, batch.terminated, next_q, next_log_prob, target_alpha, hparams.gamma
        )

        def critic_objective(critic_params):
            q = self.critics.apply(critic_params, batch.obs, batch.action)  # [num_critics, B]
            return losses.critic_loss(q, target), q

        def actor_objective(actor_params):
            mean, log_std = self.actor.apply(actor_params, batch.obs)
            action, log_prob = sample_tanh_gaussian(key_pi, mean, log_std)
            q = self.critics.apply(agent.critic_params, batch.obs, action).min(0)
            penalty = log_prob
            if self.uses_prior:
                penalty = losses.kl_estimate(log_prob, losses.prior_log_prob(action, mean0, scale0))
            loss = losses.actor_loss(penalty, q, alpha)
            if self.uses_prior and self.cfg.mean_action_weight:
                loss = loss + alpha * self.cfg.mean_action_weight * losses.mean_action_loss(
                    deterministic_action(mean), mean0, scale0)
            return loss, (log_prob, penalty)

        (critic_loss, q), critic_grads = jax.value_and_grad(critic_objective, has_aux=True)(
            agent.critic_params
        )
        (actor_loss, (log_prob, penalty)), actor_grads = jax.value_and_grad(actor_objective, has_aux=True)(
            agent.actor_params
        )

        critic_params, critic_opt_state = self._apply_adam(
            agent.critic_params, critic_grads, agent.critic_opt_state, hparams.critic_lr
        )
        actor_params, actor_opt_state = self._apply_adam(
            agent.actor_params, actor_grads, agent.actor_opt_state, hparams.actor_lr
        )
        metrics = {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "alpha": alpha,
            "entropy": -jnp.mean(log_prob),
            "q_mean": jnp.mean(q),
            "actor_grad_norm": optax.global_norm(actor_grads),
            "critic_grad_norm": optax.global_norm(critic_grads),
        }
        if self.uses_prior:  # alpha is fixed; the KL and the prior's std are the diagnostics
            log_alpha, alpha_opt_state = agent.log_alpha, agent.alpha_opt_state
            metrics.update(kl_mean=jnp.mean(penalty), kl_max=jnp.max(penalty),
                           prior_std_mean=jnp.mean(std0), prior_std_min=jnp.min(std0))
        else:
            alpha_loss, alpha_grad = jax.value_and_grad(losses.temperature_loss)(
                agent.log_alpha, log_prob, self.target_entropy(hparams)
            )
            log_alpha, alpha_opt_state = self._apply_adam(
                agent.log_alpha, alpha_grad, agent.alpha_opt_state, hparams.alpha_lr
            )
            metrics["alpha_loss"] = alpha_loss
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(learn_actor, n, o), new, old)  # noqa: E731
        actor_params, actor_opt_state = keep((actor_params, actor_opt_state),
                                             (agent.actor_params, agent.actor_opt_state))
        log_alpha, alpha_opt_state = keep((log_alpha, alpha_opt_state), (agent.log_alpha, agent.alpha_opt_state))
        target_critic_params = optax.incremental_update(
            critic_params, agent.target_critic_params, hparams.tau
        )
        new_agent = AgentState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=target_critic_params,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            log_alpha=log_alpha,
            alpha_opt_state=alpha_opt_state,
        )
        return new_agent, metrics

    def pretrain_step(
        self, agent: AgentState, hparams: HParams, obs: jax.Array, actions: jax.Array, key: jax.Array,
        prior_moments: tuple[jax.Array, jax.Array] | None = None,
    ) -> tuple[AgentState, jax.Array]:
        """One actor step on demonstration states obs [B, o] (and actions [B, a]): minimize
        KL(pi || pi0) when the algo has a prior, with pi0's (mean, std) at obs given as
        ``prior_moments`` 2 x [B, a], else the behavioral-cloning NLL. Returns the new state and
        the loss before the step."""

        def objective(actor_params):
            mean, log_std = self.actor.apply(actor_params, obs)
            if self.uses_prior:
                mean0, std0 = prior_moments
                scale0 = self.prior_scale(std0)
                action, log_prob = sample_tanh_gaussian(key, mean, log_std)
                loss = losses.pretrain_kl_loss(log_prob, losses.prior_log_prob(action, mean0, scale0))
                if self.cfg.mean_action_weight:
                    loss = loss + self.cfg.mean_action_weight * losses.mean_action_loss(
                        deterministic_action(mean), mean0, scale0)
                return loss
            return losses.behavior_cloning_loss(tanh_gaussian_log_prob(actions, mean, log_std))

        loss, grads = jax.value_and_grad(objective)(agent.actor_params)
        actor_params, actor_opt_state = self._apply_adam(
            agent.actor_params, grads, agent.actor_opt_state, hparams.actor_lr
        )
        return agent.replace(actor_params=actor_params, actor_opt_state=actor_opt_state), loss
