"""The training program: one ``TrainState`` pytree and the pure functions that advance it.

``init(key, hparams)``, ``epoch(state, hparams)`` and ``evaluate(state)`` are pure and
jit-able, and work unchanged under ``jax.vmap`` over a leading run axis (seeds x hparams).
An epoch collects ``env_steps_per_epoch`` transitions with ``lax.scan`` over vectorized env
steps; after each vectorized step it writes the transitions to the replay buffer and runs
``utd * num_envs`` critic updates, ``num_envs`` of them with an actor update, with an inner
``lax.scan``; minibatches come from the replay buffer, or partly from a fixed buffer of the
demonstrations (``demos_in_batch``: RLPD). ``pretrain`` fits the actor
on demonstration states before that (KL toward the prior, or behavioral cloning).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from kl_rl import buffer as replay
from kl_rl import priors
from kl_rl.buffer import ReplayBuffer, Transition
from kl_rl.config import HParams, TrainConfig
from kl_rl.envs import VecEnv, VecEnvState, make_env
from kl_rl.rollout import rollout
from kl_rl.sac import SAC, AgentState

_EVAL_SALT = 0x5EED  # folds the state's key into an evaluation key without consuming it

_REDUCE = {"mean": jnp.sum, "max": jnp.max, "min": jnp.min}  # over updates; "mean" sums, divided later
_NEUTRAL = {"mean": 0.0, "max": -jnp.inf, "min": jnp.inf}
_COMBINE = {"mean": jnp.add, "max": jnp.maximum, "min": jnp.minimum}


@struct.dataclass
class TrainState:
    """Everything the training loop touches, as one pytree."""

    agent: AgentState  # actor, critics, targets, optimizer states, log-alpha
    buffer: ReplayBuffer
    env_state: VecEnvState  # env physics, current observations, episode counters
    key: jax.Array  # PRNG key for the next epoch
    prior: Any  # behavioral prior pytree pi0 (nppac, kl), or None
    env_steps: jax.Array  # [] int32, transitions collected so far
    grad_steps: jax.Array  # [] int32, critic updates done so far
    demos: ReplayBuffer | None = None  # the demonstrations' transitions, fixed (demos_in_batch), or None


class Trainer:
    """Builds the env and learner for a ``TrainConfig``; its methods are the pure program."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg.validate()
        cfg = self.cfg
        self.env: VecEnv = make_env(cfg.env, cfg.num_envs, cfg.episode_length)
        self.eval_env: VecEnv = make_env(cfg.env, cfg.eval_episodes, cfg.episode_length)
        self.sac = SAC(self.cfg, self.env.obs_size, self.env.action_size)
        self._stores_prior = self.cfg.uses_prior and self.cfg.prior_in_buffer

    def init(self, key: jax.Array, hparams: HParams, prior: Any = None, demos: Transition | None = None) -> TrainState:
        """A fresh state; ``prior`` (a ``kl_rl.priors`` pytree) is required by nppac and kl,
        ``demos`` (the demonstrations' transitions, leaves [D, ...], ``kl_rl.demos.transitions``)
        where the config keeps them in the batch."""
        if (prior is not None) != self.cfg.uses_prior:
            raise ValueError(f"algo {self.cfg.algo} {'needs a' if self.cfg.uses_prior else 'takes no'} prior")
        if (demos is not None) != self.cfg.demos_in_batch:
            raise ValueError(f"demos_in_batch is {self.cfg.demos_in_batch}: pass the demonstrations' transitions "
                             "exactly when it is on")
        key_agent, key_env, key_next = jax.random.split(key, 3)
        buffer = replay.init(self.cfg.buffer_capacity, self.env.obs_size, self.env.action_size,
                             prior_moments=self._stores_prior)
        return TrainState(agent=self.sac.init(key_agent, hparams), buffer=buffer, env_state=self.env.reset(key_env),
                          key=key_next, prior=prior, env_steps=jnp.int32(0), grad_steps=jnp.int32(0),
                          demos=None if demos is None else self._demo_buffer(demos, prior))

    def _demo_buffer(self, demos: Transition, prior: Any) -> ReplayBuffer:
        """The demonstrations as a full buffer of their own (with pi0's moments where the online
        buffer stores them), which online data never overwrites."""
        count = demos.reward.shape[0]
        chex.assert_tree_shape_prefix(demos, (count,))
        if self._stores_prior:
            demos = demos.replace(prior=_prior_moments(prior, demos.obs, demos.next_obs))
        empty = replay.init(count, self.env.obs_size, self.env.action_size, prior_moments=self._stores_prior)
        return replay.add(empty, demos)

    def _sample(self, buffer: ReplayBuffer, demos: ReplayBuffer | None, hparams: HParams, key: jax.Array,
                shape: tuple[int, ...]) -> Transition:
        """Minibatches of ``shape`` (leading axes, the last the batch): uniform over the online
        buffer, or with the demonstrations in the batch its first round(demo_ratio x B) rows from
        them (RLPD's symmetric sampling at 0.5)."""
        online = replay.sample(buffer, key, shape)
        if demos is None:
            return online
        # the online rows drawn as without demonstrations, so demo_ratio 0 is plain SAC bit for bit
        offline = replay.sample(demos, jax.random.fold_in(key, 1), shape)
        from_demos = jnp.arange(shape[-1]) < jnp.round(hparams.demo_ratio * shape[-1])  # [B]
        pick = lambda d, o: jnp.where(from_demos.reshape(-1, *([1] * (d.ndim - len(shape)))), d, o)  # noqa: E731
        return jax.tree.map(pick, offline, online)

    def _updates(self, agent: AgentState, hparams: HParams, buffer: ReplayBuffer, demos: ReplayBuffer | None,
                 key: jax.Array, prior: Any, learn_actor: jax.Array) -> tuple[AgentState, dict[str, jax.Array]]:
        """``updates_per_iter`` critic steps on fresh minibatches, every ``utd``-th with an actor
        step (the actor's only where ``learn_actor``; at utd 1 each is one SAC update); returns
        metrics of the actor-and-critic steps reduced over them (sums for means, max / min for
        extremes)."""
        n, batch_size, utd = self.cfg.num_envs, self.cfg.batch_size, self.cfg.utd
        key_sample, key_update = jax.random.split(key)
        batches = self._sample(buffer, demos, hparams, key_sample, (n * utd, batch_size))  # leaves [n utd, B, ...]
        keys = jax.random.split(key_update, n * utd)
        if utd > 1:  # per actor step: utd - 1 critic-only steps, then the joint one
            batches, keys = jax.tree.map(lambda x: x.reshape(n, utd, *x.shape[1:]), (batches, keys))

        def one(agent, xs):
            batch, k = xs
            if utd > 1:
                critic_only = lambda a, x: (self.sac.critic_update(a, hparams, x[0], x[1], prior), None)  # noqa: E731
                agent, _ = jax.lax.scan(critic_only, agent, jax.tree.map(lambda x: x[:-1], (batch, k)))
                batch, k = jax.tree.map(lambda x: x[-1], (batch, k))
            return self.sac.update(agent, hparams, batch, k, prior, learn_actor=learn_actor)

        agent, metrics = jax.lax.scan(one, agent, (batches, keys))
        return agent, {k: _REDUCE[self.sac.metric_reductions[k]](v) for k, v in metrics.items()}

    def pretrain(self, state: TrainState, hparams: HParams, demo_obs: jax.Array,
                 demo_actions: jax.Array) -> tuple[TrainState, jax.Array]:
        """``pretrain_epochs`` shuffled passes over the demonstrations in minibatches of
        ``pretrain_batch_size`` (one scan): the actor minimizes KL(pi || pi0) on the demo states
        (nppac, kl) or the NLL of the demo actions (bc-sac). demo_obs [N, o], demo_actions
        [N, a]. Returns the state and the mean loss of each epoch [pretrain_epochs]."""
        cfg = self.cfg
        n = demo_obs.shape[0]
        batch = min(cfg.pretrain_batch_size, n)
        num_batches = n // batch
        key, key_epochs = jax.random.split(state.key)
        moments = None
        if self.sac.uses_prior:  # pi0 is fixed: its moments at every demo state, once, not per minibatch
            chunk = min(1024, n)
            padded = jnp.concatenate([demo_obs, jnp.repeat(demo_obs[-1:], (-n) % chunk, axis=0)])
            chunks = jax.lax.map(lambda o: priors.predict(state.prior, o), padded.reshape(-1, chunk, padded.shape[1]))
            moments = jax.tree.map(lambda x: x.reshape(-1, x.shape[-1])[:n], chunks)  # 2 x [N, a]

        def epoch(agent, key_epoch):
            key_perm, key_steps = jax.random.split(key_epoch)
            order = jax.random.permutation(key_perm, n)[: num_batches * batch].reshape(num_batches, batch)

            def step(agent, xs):
                idx, k = xs
                batch_moments = None if moments is None else jax.tree.map(lambda x: x[idx], moments)
                return self.sac.pretrain_step(agent, hparams, demo_obs[idx], demo_actions[idx], k, batch_moments)

            agent, step_losses = jax.lax.scan(step, agent, (order, jax.random.split(key_steps, num_batches)))
            return agent, jnp.mean(step_losses)

        agent, losses = jax.lax.scan(epoch, state.agent, jax.random.split(key_epochs, cfg.pretrain_epochs))
        return state.replace(agent=agent, key=key), losses

    def epoch(self, state: TrainState, hparams: HParams) -> tuple[TrainState, dict[str, jax.Array]]:
        """Collects ``env_steps_per_epoch`` transitions, interleaved with gradient updates."""
        cfg = self.cfg
        reductions = self.sac.metric_reductions
        zero_metrics = {k: jnp.float32(_NEUTRAL[r]) for k, r in reductions.items()}

        def iteration(carry, _):
            state, sums = carry
            key, key_act, key_random, key_update = jax.random.split(state.key, 4)
            obs = state.env_state.obs  # [num_envs, obs_size]
            policy_action = self.sac.sample_action(state.agent.actor_params, obs, key_act)
            action = policy_action
            if not cfg.warmup_with_policy:  # uniform random actions until learning starts
                random_action = jax.random.uniform(key_random, policy_action.shape, minval=-1.0, maxval=1.0)
                action = jnp.where(state.env_steps < cfg.learning_starts, random_action, policy_action)
            env_state, out = self.env.step(state.env_state, action)
            moments = None
            if self._stores_prior:  # pi0 at s and s' of the new transitions, in one prediction
                moments = _prior_moments(state.prior, obs, out.next_obs)
            buffer = replay.add(state.buffer, Transition(obs=obs, action=action, reward=out.reward,
                                                         next_obs=out.next_obs, prior=moments,
                                                         terminated=out.terminated.astype(jnp.float32)))
            env_steps = state.env_steps + cfg.num_envs
            learn = env_steps >= cfg.learning_starts
            # Without a critic warm-up every update moves the actor: no per-update select is compiled.
            learn_actor = (env_steps >= cfg.learning_starts + cfg.critic_warmup_steps
                           if cfg.critic_warmup_steps else True)
            agent, update_sums = jax.lax.cond(
                learn, lambda a: self._updates(a, hparams, buffer, state.demos, key_update, state.prior, learn_actor),
                lambda a: (a, zero_metrics), state.agent)
            done = out.done
            sums = {
                **{k: _COMBINE[r](sums[k], update_sums[k]) for k, r in reductions.items()},
                "episodes": sums["episodes"] + jnp.sum(done),
                "return_sum": sums["return_sum"] + jnp.sum(jnp.where(done, out.episode_return, 0.0)),
                "length_sum": sums["length_sum"] + jnp.sum(jnp.where(done, out.episode_length, 0)),
                **({} if out.episode_success is None
                   else {"success_sum": sums["success_sum"] + jnp.sum(done & out.episode_success)}),
            }
            state = state.replace(agent=agent, buffer=buffer, env_state=env_state, key=key, env_steps=env_steps,
                                  grad_steps=state.grad_steps + jnp.where(learn, cfg.updates_per_iter, 0))
            return (state, sums), None

        sums0 = {**zero_metrics, "episodes": jnp.int32(0), "return_sum": jnp.float32(0),
                 "length_sum": jnp.int32(0), **({"success_sum": jnp.int32(0)} if self.env.success_metric else {})}
        grad_steps_before = state.grad_steps
        (state, sums), _ = jax.lax.scan(iteration, (state, sums0), None, length=cfg.iters_per_epoch)
        actor_steps = (state.grad_steps - grad_steps_before) // cfg.utd  # the updates the metrics come from
        return state, _epoch_metrics(sums, state, actor_steps, reductions)

    def evaluate(self, state: TrainState) -> dict[str, jax.Array]:
        """Deterministic policy (tanh of the mean), ``eval_episodes`` full episodes in parallel."""
        key = jax.random.fold_in(state.key, _EVAL_SALT)
        params = state.agent.actor_params
        success_metric = self.eval_env.success_metric
        episodes = rollout(self.eval_env, lambda obs, _: self.sac.greedy_action(params, obs), key,
                           metric_names=(success_metric,) if success_metric else ())
        returns = episodes.returns  # [eval_episodes]
        out = {"eval_return": jnp.mean(returns), "eval_return_min": jnp.min(returns),
               "eval_return_max": jnp.max(returns), "eval_length": jnp.mean(episodes.lengths.astype(jnp.float32)),
               "eval_returns": returns, "eval_lengths": episodes.lengths}
        if success_metric:  # the success rate of the deterministic policy (door: door open > 25 steps)
            success = episodes.successes(self.eval_env)  # [eval_episodes]
            out["eval_success"] = jnp.mean(success.astype(jnp.float32))
            out["eval_successes"] = success
        return out


def _prior_moments(prior: Any, obs: jax.Array, next_obs: jax.Array) -> jax.Array:
    """pi0's (mean, std) at s and s' of N transitions, in one prediction: [N, 4, a] =
    (mean(s), std(s), mean(s'), std(s')), the layout ``Transition.prior`` stores."""
    n = obs.shape[0]
    mean0, std0 = priors.predict(prior, jnp.concatenate([obs, next_obs]))  # [2N, a]
    return jnp.stack([mean0[:n], std0[:n], mean0[n:], std0[n:]], axis=1)


def _epoch_metrics(sums: dict[str, jax.Array], state: TrainState, updates: jax.Array,
                   reductions: dict[str, str]) -> dict[str, jax.Array]:
    """Means (or extremes) over the epoch's ``updates`` and means over its completed episodes
    (NaN where there were none)."""
    updates = updates.astype(jnp.float32)
    episodes = sums["episodes"].astype(jnp.float32)
    per_update = jnp.where(updates > 0, 1.0 / jnp.maximum(updates, 1.0), jnp.nan)
    per_episode = jnp.where(episodes > 0, 1.0 / jnp.maximum(episodes, 1.0), jnp.nan)
    metrics = {k: sums[k] * per_update if r == "mean" else jnp.where(updates > 0, sums[k], jnp.nan)
               for k, r in reductions.items()}
    metrics.update(train_return=sums["return_sum"] * per_episode,
                   train_length=sums["length_sum"].astype(jnp.float32) * per_episode, episodes=sums["episodes"],
                   env_steps=state.env_steps, grad_steps=state.grad_steps)
    if "success_sum" in sums:  # the share of the epoch's finished episodes that succeeded
        metrics["train_success"] = sums["success_sum"].astype(jnp.float32) * per_episode
    return metrics
