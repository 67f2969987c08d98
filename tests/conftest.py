"""Shared fixtures. Compiling is most of the cost of these tests, so every compiled function
that more than one test needs is built once per session here."""

from __future__ import annotations

import jax
import pytest

from kl_rl.config import HParams, TrainConfig
from kl_rl.envs.pointmass import homing_policy
from kl_rl.train import Trainer

TINY = TrainConfig(
    env="pointmass",
    num_envs=4,
    episode_length=20,
    total_steps=256,
    env_steps_per_epoch=64,
    learning_starts=64,
    batch_size=32,
    hidden_sizes=(32, 32),
    eval_episodes=3,
)


@pytest.fixture(scope="session")
def tiny_cfg() -> TrainConfig:
    return TINY


@pytest.fixture(scope="session")
def hparams() -> HParams:
    return HParams.create()


@pytest.fixture(scope="session")
def tiny_trainer(tiny_cfg: TrainConfig) -> Trainer:
    return Trainer(tiny_cfg)


@pytest.fixture(scope="session")
def tiny_programs(tiny_trainer: Trainer):
    """(init, epoch, evaluate) jitted once for a single run."""
    return (
        jax.jit(tiny_trainer.init),
        jax.jit(tiny_trainer.epoch),
        jax.jit(tiny_trainer.evaluate),
    )


@pytest.fixture(scope="session")
def pointmass_demos(tiny_cfg: TrainConfig):
    """Six noisy demonstration episodes of the homing policy on the tiny pointmass config."""
    from kl_rl import demos as demos_lib
    from kl_rl.envs import make_env

    env = make_env("pointmass", 6, tiny_cfg.episode_length)
    return demos_lib.collect(env, homing_policy, jax.random.key(11), noise_std=0.1,
                             metadata={"env": "pointmass", "episode_length": tiny_cfg.episode_length})


TINY_PRIOR_OPTIONS = {
    "gp": {"num_inducing": 24, "steps": 20, "learning_rate": 0.05},
    "mlp": {"hidden_sizes": (32, 32), "steps": 300},
    "ensemble": {"hidden_sizes": (32, 32), "steps": 300, "num_members": 2},
    "dropout": {"hidden_sizes": (32, 32), "steps": 300, "num_passes": 4},
    "floor": {"hidden_sizes": (32, 32), "steps": 300, "min_std": 0.1},
}


@pytest.fixture(scope="session")
def pointmass_priors(pointmass_demos):
    """One small prior of every kind, fitted to the pointmass demonstrations."""
    from kl_rl import priors

    return {kind: priors.fit(kind, jax.random.key(5), pointmass_demos.observations, pointmass_demos.actions,
                             **opts) for kind, opts in TINY_PRIOR_OPTIONS.items()}
