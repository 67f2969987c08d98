"""Demonstrations: save/load round trip, every validation error, noisy collection, select."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_rl import demos as demos_lib
from kl_rl.demos import Demonstrations, DemosError
from kl_rl.envs import make_env


def _toy(lengths=(3, 2)) -> Demonstrations:
    steps = sum(lengths)
    rng = np.random.default_rng(0)
    return Demonstrations(
        observations=rng.normal(size=(steps, 4)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(steps, 2)).astype(np.float32),
        rewards=np.arange(steps, dtype=np.float32),
        terminals=np.zeros(steps, bool),
        truncations=np.isin(np.arange(steps), np.cumsum(lengths) - 1),
        episode_ids=np.repeat(np.arange(len(lengths), dtype=np.int32), lengths),
        episode_lengths=np.asarray(lengths, np.int32),
        metadata={"env": "pointmass", "noise_std": 0.1},
    )


@pytest.fixture(scope="module")
def env():
    return make_env("pointmass", num_envs=3, episode_length=30)


@pytest.fixture(scope="module")
def noisy(env):
    return demos_lib.collect(env, lambda obs: jnp.zeros((obs.shape[0], 2)), jax.random.key(0), noise_std=0.3)


def test_round_trip(tmp_path):
    demos = _toy()
    path = demos_lib.save(demos, tmp_path / "toy")
    assert path.name == "toy.npz" and (tmp_path / "toy.json").exists()
    loaded = demos_lib.load(tmp_path / "toy.npz", obs_size=4, action_size=2)
    for name in demos_lib.ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(demos, name))
    meta = loaded.metadata
    assert meta["env"] == "pointmass" and meta["num_episodes"] == 2 and meta["num_steps"] == 5
    assert meta["obs_size"] == 4 and meta["action_size"] == 2 and "kl_rl_version" in meta
    np.testing.assert_allclose(meta["episode_returns"], [0 + 1 + 2, 3 + 4])


def _write(tmp_path, demos, **replace):
    arrays = {name: getattr(demos, name) for name in demos_lib.ARRAYS} | replace
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "not found"),
        ("not_npz", "not a kl_rl demonstrations file"),
        ("no_actions", "not a kl_rl demonstrations file (no actions, rewards"),
        ("obs_dims", "observations have 4 dims but the env has 17"),
        ("nan", "observations contain NaN or inf"),
        ("action_box", "actions outside [-1, 1]"),
        ("short_rewards", "inconsistent lengths: rewards has 4 steps"),
        ("episode_lengths", "inconsistent lengths: episode_lengths sum to 6"),
        ("bad_json", "is not valid JSON"),
        ("returns", "metadata episode_returns do not match"),
    ],
)
def test_load_rejects_bad_files_with_one_line(tmp_path, case, expected):
    demos, obs_size = _toy(), None
    if case == "missing":
        path = tmp_path / "absent.npz"
    elif case == "not_npz":
        path = tmp_path / "bad.npz"
        path.write_text("hello")
    elif case == "no_actions":
        path = tmp_path / "bad.npz"
        np.savez(path, observations=demos.observations)
    elif case == "obs_dims":
        path, obs_size = demos_lib.save(demos, tmp_path / "bad"), 17
    elif case == "nan":
        obs = demos.observations.copy()
        obs[1, 2] = np.nan
        path = _write(tmp_path, demos, observations=obs)
    elif case == "action_box":
        path = _write(tmp_path, demos, actions=demos.actions * 1.5 + 0.6)
    elif case == "short_rewards":
        path = _write(tmp_path, demos, rewards=demos.rewards[:4])
    elif case == "episode_lengths":
        path = _write(tmp_path, demos, episode_lengths=np.array([3, 3], np.int32))
    elif case == "bad_json":
        path = demos_lib.save(demos, tmp_path / "bad")
        (tmp_path / "bad.json").write_text("{not json")
    elif case == "returns":
        path = demos_lib.save(demos, tmp_path / "bad")
        meta = json.loads((tmp_path / "bad.json").read_text())
        meta["episode_returns"] = [0.0, 0.0]
        (tmp_path / "bad.json").write_text(json.dumps(meta))
    with pytest.raises(DemosError) as err:
        demos_lib.load(path, obs_size=obs_size)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_collect_noise_shapes_and_episode_split(noisy):
    assert noisy.observations.shape == (90, 4) and noisy.actions.shape == (90, 2)
    np.testing.assert_array_equal(noisy.episode_lengths, [30, 30, 30])
    np.testing.assert_array_equal(noisy.episode_ids, np.repeat([0, 1, 2], 30))
    # Each episode starts from its own reset state, at rest.
    starts = noisy.observations[[0, 30, 60]]
    np.testing.assert_allclose(starts[:, 2:], 0.0)
    assert len({tuple(np.round(s[:2], 5)) for s in starts}) == 3
    # Noise around the zero action: std ~0.3 (clipping at |a| = 1 hardly matters), mean ~0.
    assert abs(float(noisy.actions.std()) - 0.3) < 0.05 and abs(float(noisy.actions.mean())) < 0.06
    # All time-limit ends: a truncation on each episode's last step, nowhere else.
    np.testing.assert_array_equal(np.flatnonzero(noisy.truncations), [29, 59, 89])
    assert not noisy.terminals.any()
    np.testing.assert_allclose(noisy.episode_returns, noisy.rewards.reshape(3, 30).sum(1), rtol=1e-5)


def test_collect_splits_terminated_episodes(env):
    pushed = demos_lib.collect(env, lambda obs: jnp.ones((obs.shape[0], 2)), jax.random.key(1), noise_std=0.0)
    lengths = pushed.episode_lengths
    assert (lengths < 30).all() and lengths.sum() == pushed.num_steps
    ends = np.cumsum(lengths) - 1
    np.testing.assert_array_equal(np.flatnonzero(pushed.terminals), ends)
    assert not pushed.truncations.any()
    np.testing.assert_array_equal(pushed.actions, 1.0)


def test_select_first_episodes(noisy, tmp_path):
    one = demos_lib.select(noisy, 1)
    assert one.num_episodes == 1 and one.num_steps == 30
    np.testing.assert_array_equal(one.observations, noisy.observations[:30])
    assert one.metadata["episode_returns"] == pytest.approx([noisy.episode_returns[0]], rel=1e-6)
    demos_lib.load(demos_lib.save(one, tmp_path / "one"))  # still a valid file
    with pytest.raises(DemosError, match="choose 1 to 3"):
        demos_lib.select(noisy, 4)


def test_select_best_episodes_keeps_them_whole_and_in_file_order(tmp_path):
    # returns by episode: 0+1+2 = 3, 3+4 = 7, 5 = 5 (rewards count the steps up)
    demos = _toy(lengths=(3, 2, 1))
    best = demos_lib.select(demos, 2, "best")
    assert best.metadata["episodes"] == [1, 2]
    np.testing.assert_array_equal(best.episode_lengths, [2, 1])
    np.testing.assert_array_equal(best.episode_ids, [0, 0, 1])
    np.testing.assert_array_equal(best.rewards, [3, 4, 5])
    np.testing.assert_array_equal(best.observations, demos.observations[3:])
    np.testing.assert_allclose(best.episode_returns, [7, 5])
    np.testing.assert_array_equal(best.truncations, [False, True, True])
    demos_lib.load(demos_lib.save(best, tmp_path / "best"))  # still a valid file
    one = demos_lib.select(demos, 1, "best")
    assert one.metadata["episodes"] == [1] and one.num_steps == 2
    assert "episodes" not in demos_lib.select(demos, 2).metadata  # the first ones: as before
    with pytest.raises(DemosError, match="choose from first, best"):
        demos_lib.select(demos, 1, "worst")
