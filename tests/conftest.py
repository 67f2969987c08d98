"""Shared fixtures. Compiling is most of the cost of these tests, so every compiled function
that more than one test needs is built once per session here."""

from __future__ import annotations

import jax
import pytest

from kl_rl.config import HParams, TrainConfig
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
