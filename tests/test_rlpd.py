"""Demonstrations in the replay batch and RLPD's critic recipe (``--algo rlpd``, and the same
options for the other algos): the mixed batch, the fixed demonstrations buffer, the subset-minimum
target, LayerNorm, update counts per UTD, exact resume, learning, and SAC as a special case."""

from __future__ import annotations

import dataclasses
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_rl import demos as demos_lib
from kl_rl.buffer import Transition
from kl_rl.config import HParams, TrainConfig
from kl_rl.prior_source import DemoArrays
from kl_rl.train import Trainer

# The tiny pointmass config with RLPD's recipe scaled down: 4 critics, subset 2, UTD 3.
RLPD = TrainConfig(env="pointmass", algo="rlpd", num_envs=4, episode_length=20, total_steps=256, env_steps_per_epoch=64,
                   learning_starts=64, batch_size=32, hidden_sizes=(32, 32), eval_episodes=3, num_critics=4, utd=3)


@pytest.fixture(scope="module")
def demo_transitions(pointmass_demos) -> Transition:
    return Transition(**{k: jnp.asarray(v) for k, v in demos_lib.transitions(pointmass_demos).items()})


@pytest.fixture(scope="module")
def rlpd_run(demo_transitions):
    """(trainer, initial state, state after two epochs, metrics of the second) of the tiny rlpd config."""
    trainer = Trainer(RLPD)
    hparams = HParams.create(entropy_per_dim=-0.5)
    state0 = jax.jit(trainer.init)(jax.random.key(0), hparams, None, demo_transitions)
    epoch = jax.jit(trainer.epoch)
    state, _ = epoch(state0, hparams)
    state, metrics = epoch(state, hparams)
    return trainer, state0, state, metrics


def test_transitions_drop_truncated_ends_and_keep_terminal_ones(pointmass_demos):
    demos = pointmass_demos  # 6 episodes of 20 steps, each ended by the time limit
    out = demos_lib.transitions(demos)
    assert out["obs"].shape == (demos.num_steps - demos.num_episodes, 4)
    np.testing.assert_array_equal(out["next_obs"][:19], np.asarray(demos.observations)[1:20])
    assert not out["terminated"].any()
    ended = dataclasses.replace(demos, terminals=np.asarray(demos.truncations).copy(),
                                truncations=np.zeros_like(demos.truncations))
    out = demos_lib.transitions(ended)  # the same episodes ended by the MDP: every step kept, no bootstrap at ends
    assert out["obs"].shape[0] == demos.num_steps and out["terminated"].sum() == demos.num_episodes
    unknown = dataclasses.replace(demos, truncations=np.zeros_like(demos.truncations))
    with pytest.raises(demos_lib.DemosError, match="episode 0 ends neither terminated nor truncated"):
        demos_lib.transitions(unknown)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 1.0])
def test_mixed_batch_draws_the_demo_ratio_from_the_demonstrations(rlpd_run, ratio):
    trainer, state0, _, _ = rlpd_run
    online = state0.buffer.replace(size=jnp.int32(50), data=state0.buffer.data.replace(
        reward=jnp.ones_like(state0.buffer.data.reward)))
    demos = state0.demos.replace(data=state0.demos.data.replace(reward=-jnp.ones_like(state0.demos.data.reward)))
    batch = trainer._sample(online, demos, HParams.create(demo_ratio=ratio), jax.random.key(3), (5, 32))
    from_demos = np.asarray(batch.reward == -1.0).sum(axis=1)  # [5]
    np.testing.assert_array_equal(from_demos, round(ratio * 32))


def test_demonstrations_buffer_is_fixed_and_full(rlpd_run, demo_transitions):
    _, state0, state, _ = rlpd_run
    assert int(state.demos.size) == demo_transitions.reward.shape[0] == state.demos.capacity
    for before, after in zip(jax.tree.leaves(state0.demos), jax.tree.leaves(state.demos), strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(state.demos.data.obs, demo_transitions.obs)
    assert int(state.buffer.size) == 128  # the online data went to the other buffer


def test_critic_and_actor_updates_per_epoch_follow_the_utd(rlpd_run):
    _, _, state, metrics = rlpd_run
    updates_after_start = (128 - 64) * 3 + 4 * 3  # UTD 3 per transition from the step that reaches 64
    assert int(state.grad_steps) == int(metrics["grad_steps"]) == updates_after_start
    assert int(state.agent.critic_opt_state.count) == updates_after_start
    assert int(state.agent.actor_opt_state.count) == updates_after_start // 3


def test_layernorm_sits_in_the_critics_where_asked(rlpd_run):
    _, state0, _, _ = rlpd_run
    names = lambda tree: {str(k) for path, _ in jax.tree_util.tree_leaves_with_path(tree) for k in path}  # noqa: E731
    assert any("LayerNorm" in n for n in names(state0.agent.critic_params))
    assert not any("LayerNorm" in n for n in names(state0.agent.actor_params))
    plain = Trainer(dataclasses.replace(RLPD, critic_layernorm=False)).sac
    params = plain.critics.init(jax.random.key(0), jnp.zeros((1, 4)), jnp.zeros((1, 2)))
    assert not any("LayerNorm" in n for n in names(params))
    assert len(state0.agent.critic_params["params"]) == 4  # four separate critics


def test_subset_target_is_the_minimum_over_the_drawn_critics(rlpd_run):
    trainer, _, state, _ = rlpd_run
    sac, agent, hparams = trainer.sac, state.agent, HParams.create(gamma=0.9)
    batch = jax.tree.map(lambda x: x[:8], state.buffer.data)
    key, key_next = jax.random.key(7), jax.random.key(8)
    alpha = jnp.float32(0.2)
    target = sac.td_target(agent, hparams, batch, key, key_next, None, alpha)
    # by hand: the next action, every target critic's value there, the subset's minimum
    from kl_rl.distributions import sample_tanh_gaussian

    mean, log_std = sac.actor.apply(agent.actor_params, batch.next_obs)
    next_action, next_log_prob = sample_tanh_gaussian(key_next, mean, log_std)
    qs = np.asarray(sac.critics.apply(agent.target_critic_params, batch.next_obs, next_action))  # [4, 8]
    subset = np.asarray(sac.target_subset(key))
    assert subset.shape == (2,) and len(set(subset.tolist())) == 2
    expected = batch.reward + 0.9 * (1 - batch.terminated) * (qs[subset].min(0) - 0.2 * np.asarray(next_log_prob))
    np.testing.assert_allclose(target, expected, rtol=1e-5, atol=1e-5)
    drawn = {int(i) for k in range(40) for i in np.asarray(sac.target_subset(jax.random.key(k)))}
    assert drawn == {0, 1, 2, 3}  # every critic takes part across updates


def test_rlpd_reduced_to_sac_is_sac_bit_for_bit(demo_transitions):
    """Two critics without LayerNorm, the whole ensemble in the target, the actor on their
    minimum, UTD 1 and a demo ratio of 0: the same program as sac, to the bit."""
    base = TrainConfig(env="pointmass", algo="sac", num_envs=4, episode_length=20, total_steps=128,
                       env_steps_per_epoch=64, learning_starts=64, batch_size=32, hidden_sizes=(32, 32),
                       eval_episodes=3)
    reduced = dataclasses.replace(base, algo="rlpd", num_critics=2, critic_layernorm=False, critic_subset=2, utd=1,
                                  actor_q="min", demos_in_batch=True)
    hparams = HParams.create(demo_ratio=0.0)
    finals = []
    for cfg, demos in ((base, None), (reduced, demo_transitions)):
        trainer = Trainer(cfg)
        state = trainer.init(jax.random.key(1), hparams, None, demos)
        epoch = jax.jit(trainer.epoch)
        for _ in range(2):
            state, _ = epoch(state, hparams)
        finals.append(state.agent)
    for a, b in zip(jax.tree.leaves(finals[0]), jax.tree.leaves(finals[1]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_rlpd_learns_pointmass(pointmass_demos):
    """~2.5k transitions (the budget of test_sac_learns_pointmass) take rlpd's deterministic
    policy from drifting to homing in on the origin."""
    from kl_rl.envs import make_env
    from kl_rl.envs.pointmass import homing_policy

    env = make_env("pointmass", 8, 50)
    demos = demos_lib.collect(env, homing_policy, jax.random.key(12), noise_std=0.1, metadata={"env": "pointmass"})
    cfg = TrainConfig(env="pointmass", algo="rlpd", num_envs=8, episode_length=50, total_steps=2560,
                      env_steps_per_epoch=512, learning_starts=512, batch_size=64, hidden_sizes=(64, 64),
                      eval_episodes=8, num_critics=4, utd=2)
    trainer = Trainer(cfg)
    hparams = HParams.create(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, entropy_per_dim=-0.5)
    batch = Transition(**{k: jnp.asarray(v) for k, v in demos_lib.transitions(demos).items()})
    state = jax.jit(trainer.init)(jax.random.key(0), hparams, None, batch)
    evaluate = jax.jit(trainer.evaluate)
    before = float(evaluate(state)["eval_return"])
    epoch = jax.jit(trainer.epoch, donate_argnums=0)
    for _ in range(cfg.num_epochs):
        state, _ = epoch(state, hparams)
    after = float(evaluate(state)["eval_return"])
    print(f"rlpd pointmass eval return before {before:.1f}, after {after:.1f}")
    assert after > before + 10 and after > -25, (before, after)


def test_resumed_rlpd_run_equals_the_uninterrupted_one(tmp_path, pointmass_demos):
    """The demonstrations buffer is part of the checkpoint: a run continued from a middle
    checkpoint, with no demonstrations passed, ends with the same bytes."""
    from kl_rl.loop import run

    cfg = dataclasses.replace(RLPD, total_steps=320)
    hparams = HParams.create(entropy_per_dim=-0.5)
    arrays = DemoArrays(pointmass_demos.observations, pointmass_demos.actions,
                        demos_lib.transitions(pointmass_demos))
    whole = tmp_path / "whole"
    run(cfg, hparams, 0, whole, eval_every=128, progress=False, tensorboard=False, demos=arrays,
        checkpoint_every=1, keep_checkpoints=5)
    stopped = tmp_path / "stopped"
    shutil.copytree(whole, stopped)
    for epoch in (4, 5):  # as if killed after epoch 3
        shutil.rmtree(stopped / "checkpoints" / str(epoch))
    (stopped / "params.msgpack").unlink()
    run(cfg, hparams, 0, stopped, eval_every=128, progress=False, tensorboard=False, resume=True)
    assert (stopped / "params.msgpack").read_bytes() == (whole / "params.msgpack").read_bytes()
    timing = ("epoch_seconds", "env_steps_per_s", "wall_seconds")
    rows = lambda d: [{k: v for k, v in r.items() if k not in timing}  # noqa: E731
                      for r in map(__import__("json").loads, (d / "metrics.jsonl").read_text().splitlines())]
    assert rows(stopped) == rows(whole)


def test_critic_recipe_and_labels_compose_rlpds_recipe_with_any_algo():
    from kl_rl.sweep import label_config, label_folder, label_from_folder

    base = TrainConfig(env="pointmass")
    composed = label_config(base, "nppac@critic_recipe=rlpd,utd=2")
    assert (composed.algo, composed.num_critics, composed.critic_layernorm, composed.critic_subset) == ("nppac", 10,
                                                                                                      True, 2)
    assert (composed.utd, composed.actor_q, composed.demos_in_batch, composed.pretrains) == (2, "mean", True, True)
    rlpd = label_config(base, "rlpd")
    assert (rlpd.num_critics, rlpd.utd, rlpd.demos_in_batch, rlpd.pretrains) == (10, 20, True, False)
    assert label_config(base, "sac").num_critics == 2 and label_config(base, "sac").critic_recipe == "sac"
    assert label_folder("nppac@critic_recipe=rlpd,utd=2") == "nppac+critic_recipe=rlpd+utd=2"
    for label in ("nppac", "kl:mlp", "kl:ensemble", "bc-sac", "sac", "rlpd@num_critics=2,utd=1",
                  "nppac@critic_recipe=rlpd,utd=2", "kl:floor@alpha=0.5"):
        assert label_from_folder(label_folder(label)) == label
    with pytest.raises(ValueError, match="is not a label's folder"):
        label_from_folder("prior")
    with pytest.raises(ValueError, match="label rlpd@utd=x: utd=x: not a value for utd"):
        label_config(base, "rlpd@utd=x")
    with pytest.raises(ValueError, match="critic_subset \\(3\\) is larger than the ensemble"):
        label_config(base, "sac@critic_subset=3")


def test_nppac_plus_names_nppac_with_rlpds_critics_at_two_critics_and_utd_one():
    from kl_rl.sweep import label_config, label_folder, label_from_folder

    base = TrainConfig(env="pointmass")
    plus = TrainConfig(env="pointmass", algo="nppac+").validate()
    composed = label_config(base, "nppac@critic_recipe=rlpd,num_critics=2,utd=1")
    assert plus == composed  # the same program, and its record names what it resolved to
    assert (plus.algo, plus.num_critics, plus.critic_layernorm) == ("nppac", 2, True)
    assert (plus.critic_subset, plus.utd) == (2, 1)
    assert (plus.actor_q, plus.demos_in_batch, plus.pretrains) == ("mean", True, True)
    # the user's own settings win over the name's
    assert label_config(base, "nppac+@utd=4,num_critics=10") == label_config(
        base, "nppac@critic_recipe=rlpd,num_critics=10,utd=4")
    for label in ("nppac+", "nppac+@utd=4", "nppac", "nppac@critic_recipe=rlpd,num_critics=2,utd=1"):
        assert label_from_folder(label_folder(label)) == label
