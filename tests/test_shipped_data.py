"""The demonstrations and experts shipped in data/ load, fit their envs and agree with themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kl_rl import demos as demos_lib
from kl_rl.envs import make_env
from kl_rl.experts import load_expert

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.mark.parametrize("env_name", ["halfcheetah", "hopper", "walker2d", "ant"])
def test_shipped_demos_load_with_env_dims(env_name):
    path = DATA / "demos" / f"{env_name}.npz"
    if not path.exists():
        pytest.skip(f"{path} not shipped")
    env = make_env(env_name, 1)
    demos = demos_lib.load(path, obs_size=env.obs_size, action_size=env.action_size)
    assert demos.num_episodes == 15 and demos.observations.dtype == np.float32
    np.testing.assert_allclose(demos.metadata["episode_returns"], demos.episode_returns, rtol=1e-5)
    assert (demos.episode_lengths <= 1000).all()
    expert = load_expert(DATA / "experts" / env_name)
    assert expert.cfg.env == env_name
    assert demos.metadata["expert_return"] == pytest.approx(expert.summary["eval_return"])


def test_shipped_door_demos_are_successful_rollouts_on_the_binary_task():
    """25 rollouts of kl_rl's own door expert (its parameters are not shipped: it learned from
    DAPG's third-party human demonstrations): full 200-step episodes, binary rewards, and
    successes that follow from those rewards by the 25-step rule."""
    path = DATA / "demos" / "door.npz"
    if not path.exists():
        pytest.skip(f"{path} not shipped")
    from kl_rl.envs.door import SUCCESS_STEPS

    demos = demos_lib.load(path, obs_size=39, action_size=28)
    meta = demos.metadata
    assert demos.num_episodes == 25 and (demos.episode_lengths == 200).all()
    assert meta["env"] == "door" and meta["expert_env"] == "door-dense" and meta["expert_success"] >= 0.9
    assert set(np.unique(demos.rewards)) <= {-1.0, 0.0}
    starts = np.concatenate([[0], np.cumsum(demos.episode_lengths)[:-1]])
    goal_steps = np.add.reduceat((demos.rewards == 0.0).astype(int), starts)  # reward 0: the door is open
    np.testing.assert_array_equal(goal_steps > SUCCESS_STEPS, meta["successes"])
    assert np.abs(demos.actions).max() <= 1.0
