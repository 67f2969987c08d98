"""The training program end to end: counters, purity, vmap over seeds, determinism, learning."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from kl_rl.config import HParams, TrainConfig
from kl_rl.train import Trainer


@pytest.fixture(scope="module")
def single_run(tiny_programs, hparams):
    """Two epochs of one run, seed 0, plus its evaluation."""
    init, epoch, evaluate = tiny_programs
    state = init(jax.random.key(0), hparams)
    history = []
    for _ in range(2):
        state, metrics = epoch(state, hparams)
        history.append(jax.device_get(metrics))
    return state, history, jax.device_get(evaluate(state))


@pytest.fixture(scope="module")
def vmapped_run(tiny_trainer, hparams):
    """Two epochs of two seeds in one vmapped program."""
    keys = jax.vmap(jax.random.key)(np.arange(2))
    both = jax.tree.map(lambda x: np.stack([x, x]), hparams)
    state = jax.jit(jax.vmap(tiny_trainer.init))(keys, both)
    epoch = jax.jit(jax.vmap(tiny_trainer.epoch), donate_argnums=0)
    for _ in range(2):
        state, metrics = epoch(state, both)
    return state, jax.device_get(metrics), jax.device_get(jax.jit(jax.vmap(tiny_trainer.evaluate))(state))


def test_epoch_counters(single_run, tiny_cfg):
    state, history, _ = single_run
    # learning_starts = 64 = one epoch: updates start on its last vectorized step (4 envs x utd 1).
    assert [int(m["env_steps"]) for m in history] == [64, 128]
    assert [int(m["grad_steps"]) for m in history] == [4, 68]
    assert int(state.buffer.size) == 128
    # 32 steps per env with a 20-step time limit: one finished episode per env.
    assert int(history[0]["episodes"]) + int(history[1]["episodes"]) == 4 * (128 // 4 // 20)


def test_metrics_finite_and_eval_shapes(single_run, tiny_cfg, tiny_trainer):
    _, history, evaluation = single_run
    assert set(tiny_trainer.sac.metric_reductions) <= set(history[-1])
    for name in tiny_trainer.sac.metric_reductions:
        assert np.isfinite(history[-1][name]), name
    assert evaluation["eval_returns"].shape == (tiny_cfg.eval_episodes,)
    assert np.isfinite(evaluation["eval_returns"]).all()
    assert evaluation["eval_return_min"] <= evaluation["eval_return"] <= evaluation["eval_return_max"]


def test_epoch_compiles_once(tiny_programs, single_run):
    _, epoch, _ = tiny_programs
    assert epoch._cache_size() == 1  # init's weak types would otherwise retrace the 2nd call


def test_vmap_over_two_seeds(vmapped_run, single_run, tiny_trainer):
    state, metrics, evaluation = vmapped_run
    for name in tiny_trainer.sac.metric_reductions:
        assert metrics[name].shape == (2,) and np.isfinite(metrics[name]).all(), name
    assert evaluation["eval_returns"].shape == (2, 3) and np.isfinite(evaluation["eval_returns"]).all()
    assert not np.allclose(metrics["critic_loss"][0], metrics["critic_loss"][1])
    # Run 0 of the sweep is the single run with seed 0: one code path for both.
    single_state, single_history, _ = single_run
    np.testing.assert_allclose(metrics["critic_loss"][0], single_history[-1]["critic_loss"], rtol=1e-4)
    np.testing.assert_allclose(
        state.agent.actor_params["params"]["MLP_0"]["Dense_0"]["kernel"][0],
        single_state.agent.actor_params["params"]["MLP_0"]["Dense_0"]["kernel"], rtol=1e-4, atol=1e-6,
    )


def test_same_seed_same_numbers(tiny_programs, hparams, single_run, tiny_trainer):
    init, epoch, _ = tiny_programs
    state = init(jax.random.key(0), hparams)
    for _ in range(2):
        state, metrics = epoch(state, hparams)
    _, history, _ = single_run
    for name in tiny_trainer.sac.metric_reductions:
        assert float(metrics[name]) == float(history[-1][name]), name


def test_sac_learns_pointmass():
    """~2.5k transitions take the deterministic policy from drifting to homing in on the origin."""
    cfg = TrainConfig(env="pointmass", num_envs=8, episode_length=50, total_steps=2560,
                      env_steps_per_epoch=512, learning_starts=512, batch_size=64,
                      hidden_sizes=(64, 64), eval_episodes=8)
    trainer = Trainer(cfg)
    hparams = HParams.create(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)
    state = jax.jit(trainer.init)(jax.random.key(0), hparams)
    evaluate = jax.jit(trainer.evaluate)
    before = float(evaluate(state)["eval_return"])
    epoch = jax.jit(trainer.epoch, donate_argnums=0)
    for _ in range(cfg.num_epochs):
        state, _ = epoch(state, hparams)
    after = float(evaluate(state)["eval_return"])
    # Starting at distance ~0.8 on average, staying put costs ~-40 over 50 steps; homing in ~-10.
    print(f"pointmass eval return before {before:.1f}, after {after:.1f}")
    assert after > before + 10 and after > -25, (before, after)


def test_truncations_are_stored_as_non_terminal(single_run, tiny_cfg):
    """Time-limit ends must bootstrap: their rows say terminated = 0 and keep the true final obs."""
    state, _, _ = single_run
    data = jax.device_get(state.buffer.data)
    n = tiny_cfg.num_envs
    last_step = slice((tiny_cfg.episode_length - 1) * n, tiny_cfg.episode_length * n)  # 20th step of each env
    first_step = slice(tiny_cfg.episode_length * n, (tiny_cfg.episode_length + 1) * n)  # 1st step after reset
    terminated_early = data.terminated[: (tiny_cfg.episode_length - 1) * n].reshape(-1, n).any(axis=0)
    truncated = ~terminated_early  # envs that reached the time limit
    assert truncated.any()
    np.testing.assert_array_equal(data.terminated[last_step][truncated], 0.0)
    # The stored next_obs is the final state, not the fresh start that the next row begins from.
    assert not np.allclose(data.next_obs[last_step][truncated], data.obs[first_step][truncated])


def _constant_actor(actor_params, value: float):
    """The actor made to output mean ``value`` and the smallest std everywhere (last layer zeroed)."""
    mlp = dict(actor_params["params"]["MLP_0"])
    last = sorted(mlp)[-1]
    size = mlp[last]["bias"].shape[0] // 2
    mlp[last] = {"kernel": jax.numpy.zeros_like(mlp[last]["kernel"]),
                 "bias": jax.numpy.concatenate([jax.numpy.full(size, value), jax.numpy.full(size, -30.0)])}
    return {"params": {**actor_params["params"], "MLP_0": mlp}}


@pytest.mark.parametrize("mode", ["random", "policy"])
def test_warmup_actions_come_from_the_asked_source(tiny_cfg, hparams, mode):
    cfg = dataclasses.replace(tiny_cfg, total_steps=64, learning_starts=64, warmup_actions=mode)
    trainer = Trainer(cfg)
    state = trainer.init(jax.random.key(0), hparams)
    state = state.replace(agent=state.agent.replace(actor_params=_constant_actor(state.agent.actor_params, 0.5)))
    state, _ = jax.jit(trainer.epoch)(state, hparams)
    actions = np.asarray(state.buffer.data.action[:64])  # [64, a], all collected during the warm-up
    if mode == "policy":
        np.testing.assert_allclose(actions, np.tanh(0.5), rtol=1e-6)
    else:
        assert actions.min() < -0.5 and actions.max() > 0.5 and abs(actions.mean()) < 0.2


def test_warmup_defaults_follow_pretraining_and_the_env_preset(tiny_cfg):
    from kl_rl.envs import preset

    pretrained = dataclasses.replace(tiny_cfg, algo="nppac")
    assert pretrained.warmup_with_policy
    assert pretrained.critic_warmup_steps == preset("pointmass").pretrained_critic_warmup == 5_000
    assert not tiny_cfg.warmup_with_policy and tiny_cfg.critic_warmup_steps == 0  # sac: SAC's usual start
    cold = dataclasses.replace(pretrained, pretrain_epochs=0)
    assert not cold.warmup_with_policy and cold.critic_warmup_steps == 0
    reference = dataclasses.replace(pretrained, warmup_actions="random", critic_warmup=0)
    assert not reference.warmup_with_policy and reference.critic_warmup_steps == 0
    cheetah = dataclasses.replace(pretrained, env="halfcheetah")  # its preset: SAC's random warm-up, no critic warm-up
    assert not cheetah.warmup_with_policy and cheetah.critic_warmup_steps == 0
    # validate() records what will run: the preset's choices resolved, explicit options kept.
    resolved = pretrained.validate()
    assert (resolved.warmup_actions, resolved.critic_warmup, resolved.kl_in_target) == ("policy", 5_000, True)
    assert cheetah.validate().warmup_actions == "random" and cheetah.validate().critic_warmup == 0
    assert dataclasses.replace(cheetah, warmup_actions="policy").validate().warmup_actions == "policy"


def test_run_folders_from_before_resolution_resume_with_their_recipe():
    from kl_rl.config import config_from_json

    old = {"env": "halfcheetah", "algo": "nppac", "warmup_actions": "auto", "critic_warmup": None,
           "mean_action_weight": 1.0, "kl_in_target": None}  # recorded before settings were resolved
    cfg = config_from_json(old).validate()
    assert (cfg.warmup_actions, cfg.critic_warmup, cfg.kl_in_target) == ("policy", 5_000, True)


def test_critic_warmup_holds_the_actor_while_the_critics_learn(tiny_cfg, hparams):
    # Updates start at 64 transitions; the actor may move only from 64 + 64 = 128 on, i.e. in the
    # last vectorized step of the second epoch.
    cfg = dataclasses.replace(tiny_cfg, critic_warmup=64)
    trainer = Trainer(cfg)
    epoch = jax.jit(trainer.epoch)
    state = jax.jit(trainer.init)(jax.random.key(0), hparams)
    start = state.agent
    state, _ = epoch(state, hparams)
    assert int(state.grad_steps) > 0
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.agent.actor_params),
                                                     jax.tree.leaves(start.actor_params), strict=True))
    assert not np.array_equal(jax.tree.leaves(state.agent.critic_params)[0], jax.tree.leaves(start.critic_params)[0])
    held = state.agent.actor_params
    state, _ = epoch(state, hparams)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.agent.actor_params),
                                                         jax.tree.leaves(held), strict=True))
