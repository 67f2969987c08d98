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
