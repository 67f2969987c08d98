"""The SAC learner: networks, optimizer states and one jitted gradient update.

One update (Haarnoja et al. 2018, with the reference's settings): critics regress on the soft
TD target from the target critics, the actor minimizes alpha log pi - min Q under the critics
as they were before this update, alpha follows automatic entropy tuning, and the target critics
track the critics by Polyak averaging with rate tau. RLPD's critic recipe (Ball et al. 2023) is
a matter of settings: a larger ensemble with LayerNorm, the target's minimum over a random
subset of it, the actor on the ensemble's mean, and ``critic_update`` for the critic-only steps
of an update-to-data ratio above 1.

What regularizes the actor is a penalty chosen once, when the learner is built
(``kl_rl.penalties``): SAC's tuned entropy bonus (sac, bc-sac), or the one-sample KL toward the
behavioral prior pi0 with the fixed weight ``hparams.alpha`` (nppac, kl; docs/method.md section
1). ``pretrain_step`` minimizes the penalty's pretraining objective (KL toward pi0, or
behavioral cloning) before online training.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from kl_rl import losses
from kl_rl.buffer import Transition
from kl_rl.config import HParams, TrainConfig
from kl_rl.distributions import deterministic_action, sample_tanh_gaussian
from kl_rl.networks import Actor, Critics
from kl_rl.penalties import PENALTIES

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
        self.critics = Critics(cfg.hidden_sizes, cfg.num_critics, cfg.critic_layernorm)
        # Adam without a learning rate: the rate is applied from HParams so a sweep can vmap it.
        self.optimizer = optax.scale_by_adam()
        self.penalty = PENALTIES[cfg.algo](self)  # what the actor is regularized by: chosen once, here
        self.uses_prior = self.penalty.uses_prior
        names = ["critic_loss", "actor_loss", "alpha", "entropy", "q_mean", "actor_grad_norm", "critic_grad_norm"]
        names += list(self.penalty.metric_names)
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
        return AgentState(actor_params, critic_params, critic_params, self.optimizer.init(actor_params),
                          self.optimizer.init(critic_params), log_alpha, self.optimizer.init(log_alpha))

    def sample_action(self, actor_params: Params, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Stochastic action for data collection. obs [N, o] -> [N, a]."""
        mean, log_std = self.actor.apply(actor_params, obs)
        return sample_tanh_gaussian(key, mean, log_std)[0]

    def greedy_action(self, actor_params: Params, obs: jax.Array) -> jax.Array:
        """Deterministic action for evaluation. obs [N, o] -> [N, a]."""
        mean, _ = self.actor.apply(actor_params, obs)
        return deterministic_action(mean)

    def policy(self, actor_params: Params, stochastic: bool = False) -> Any:
        """``act(obs [N, o], key) -> [N, a]`` for ``rollout``: sampled, or tanh(mean) (key unused)."""
        if stochastic:
            return lambda obs, key: self.sample_action(actor_params, obs, key)
        return lambda obs, _key: self.greedy_action(actor_params, obs)

    def apply_adam(self, params, grads, opt_state, lr):
        updates, opt_state = self.optimizer.update(grads, opt_state)
        params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
        return params, opt_state

    def update(self, agent: AgentState, hparams: HParams, batch: Transition, key: jax.Array, prior: Any = None,
               learn_actor: jax.Array | bool = True) -> tuple[AgentState, dict[str, jax.Array]]:
        """One gradient step on a minibatch (leaves [B, ...]). Returns new state and metrics.
        ``prior`` is the behavioral prior pytree (required exactly when the algo uses one).
        ``learn_actor`` False (a traced bool is fine) keeps the actor and the temperature as they
        are and updates only the critics: the critic warm-up of a pretrained actor."""
        if (prior is not None) != self.uses_prior:
            raise ValueError(f"algo {self.cfg.algo} {'needs' if self.uses_prior else 'takes no'} prior")
        penalty_of = self.penalty
        key_next, key_pi = jax.random.split(key)
        alpha = penalty_of.weight(agent, hparams)
        moments = penalty_of.moments(batch, prior)
        (critic_loss, q), critic_grads = self._critic_grads(agent, hparams, batch, key, key_next, moments, alpha)

        def actor_objective(actor_params):
            mean, log_std = self.actor.apply(actor_params, batch.obs)
            action, log_prob = sample_tanh_gaussian(key_pi, mean, log_std)
            qs = self.critics.apply(agent.critic_params, batch.obs, action)  # [num_critics, B]
            q = qs.mean(0) if self.cfg.actor_q == "mean" else qs.min(0)
            penalty = penalty_of.actor_penalty(log_prob, action, moments)
            loss = losses.actor_loss(penalty, q, alpha)
            extra = penalty_of.extra_actor_loss(mean, moments, alpha)
            return (loss if extra is None else loss + extra), (log_prob, penalty)

        (actor_loss, (log_prob, penalty)), actor_grads = jax.value_and_grad(actor_objective, has_aux=True)(
            agent.actor_params)

        critic_params, critic_opt_state = self.apply_adam(agent.critic_params, critic_grads, agent.critic_opt_state,
                                                          hparams.critic_lr)
        actor_params, actor_opt_state = self.apply_adam(agent.actor_params, actor_grads, agent.actor_opt_state,
                                                        hparams.actor_lr)
        metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha": alpha, "entropy": -jnp.mean(log_prob),
                   "q_mean": jnp.mean(q), "actor_grad_norm": optax.global_norm(actor_grads),
                   "critic_grad_norm": optax.global_norm(critic_grads)}
        log_alpha, alpha_opt_state, penalty_metrics = penalty_of.finish(agent, hparams, log_prob, penalty, moments)
        metrics.update(penalty_metrics)
        if learn_actor is not True:  # a traced flag: hold the actor and the temperature where it is False
            keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(learn_actor, n, o), new, old)  # noqa: E731
            actor_params, actor_opt_state = keep((actor_params, actor_opt_state),
                                                 (agent.actor_params, agent.actor_opt_state))
            log_alpha, alpha_opt_state = keep((log_alpha, alpha_opt_state), (agent.log_alpha, agent.alpha_opt_state))
        target_critic_params = optax.incremental_update(critic_params, agent.target_critic_params, hparams.tau)
        return AgentState(actor_params, critic_params, target_critic_params, actor_opt_state, critic_opt_state,
                          log_alpha, alpha_opt_state), metrics

    def td_target(self, agent: AgentState, hparams: HParams, batch: Transition, key: jax.Array,
                  key_next: jax.Array, moments: Any, alpha: jax.Array) -> jax.Array:
        """The soft TD target [B] from the target critics at a fresh next action (``key_next``):
        their minimum, over a random ``critic_subset`` of them (drawn with ``key``) when that is
        smaller than the ensemble (RLPD, after REDQ)."""
        next_mean, next_log_std = self.actor.apply(agent.actor_params, batch.next_obs)
        next_action, next_log_prob = sample_tanh_gaussian(key_next, next_mean, next_log_std)
        next_qs = self.critics.apply(agent.target_critic_params, batch.next_obs, next_action)  # [num_critics, B]
        if self.cfg.critic_subset < self.cfg.num_critics:
            next_qs = next_qs[self.target_subset(key)]
        next_penalty = self.penalty.next_penalty(next_log_prob, next_action, moments)
        return losses.soft_td_target(batch.reward, batch.terminated, next_qs.min(0), next_penalty,
                                     self.penalty.target_weight(alpha), hparams.gamma)

    def target_subset(self, key: jax.Array) -> jax.Array:
        """The ``critic_subset`` distinct target critics [k] one update's target takes its minimum over."""
        return jax.random.choice(jax.random.fold_in(key, 1), self.cfg.num_critics, (self.cfg.critic_subset,),
                                 replace=False)

    def _critic_grads(self, agent: AgentState, hparams: HParams, batch: Transition, key: jax.Array,
                      key_next: jax.Array, moments: Any, alpha: jax.Array) -> tuple[Any, Params]:
        """((loss, q [num_critics, B]), gradients) of the critics' regression on ``td_target``."""
        target = self.td_target(agent, hparams, batch, key, key_next, moments, alpha)

        def critic_objective(critic_params):
            q = self.critics.apply(critic_params, batch.obs, batch.action)  # [num_critics, B]
            return losses.critic_loss(q, target), q

        return jax.value_and_grad(critic_objective, has_aux=True)(agent.critic_params)

    def critic_update(self, agent: AgentState, hparams: HParams, batch: Transition, key: jax.Array,
                      prior: Any = None) -> AgentState:
        """One critic-only step (and the target critics' Polyak step): the extra updates of an
        update-to-data ratio above 1, which RLPD runs before each actor update."""
        moments = self.penalty.moments(batch, prior)
        alpha = self.penalty.weight(agent, hparams)
        (_, _), grads = self._critic_grads(agent, hparams, batch, key, jax.random.split(key)[0], moments, alpha)
        critic_params, critic_opt_state = self.apply_adam(agent.critic_params, grads, agent.critic_opt_state,
                                                          hparams.critic_lr)
        target = optax.incremental_update(critic_params, agent.target_critic_params, hparams.tau)
        return agent.replace(critic_params=critic_params, critic_opt_state=critic_opt_state,
                             target_critic_params=target)

    def pretrain_step(self, agent: AgentState, hparams: HParams, obs: jax.Array, actions: jax.Array, key: jax.Array,
                      prior_moments: tuple[jax.Array, jax.Array] | None = None) -> tuple[AgentState, jax.Array]:
        """One actor step on demonstration states obs [B, o] (and actions [B, a]): minimize
        KL(pi || pi0) when the algo has a prior, with pi0's (mean, std) at obs given as
        ``prior_moments`` 2 x [B, a], else the behavioral-cloning NLL. Returns the new state and
        the loss before the step."""

        def objective(actor_params):
            mean, log_std = self.actor.apply(actor_params, obs)
            return self.penalty.pretrain_loss(mean, log_std, actions, key, prior_moments)

        loss, grads = jax.value_and_grad(objective)(agent.actor_params)
        actor_params, actor_opt_state = self.apply_adam(agent.actor_params, grads, agent.actor_opt_state,
                                                        hparams.actor_lr)
        return agent.replace(actor_params=actor_params, actor_opt_state=actor_opt_state), loss
