"""A tiny N-PPAC sweep on door, vmapped over two seeds, that logs success rates (the door's MJX
compile makes it the suite's slowest test; it has a file of its own so pytest-xdist can run it
beside the rest)."""

from __future__ import annotations

import jax
import numpy as np


def test_tiny_nppac_sweep_on_door_logs_success_rates(tmp_path):
    """Success rates in the metrics, and in the final evaluation after training. (kl-rl evaluate
    and render on door would each compile the door's step once more, minutes on CI's CPU: the
    success rule they share is tested here and in test_door.py, the door's page in test_render.py.)"""
    import json

    from kl_rl import priors
    from kl_rl.config import HParams, TrainConfig
    from kl_rl.sweep import expand, run_sweep

    cfg = TrainConfig(env="door", algo="nppac", num_envs=2, episode_length=30, total_steps=120,
                      env_steps_per_epoch=60, learning_starts=60, batch_size=16, hidden_sizes=(16, 16),
                      eval_episodes=2, final_eval_episodes=3, pretrain_epochs=1, pretrain_batch_size=16)
    rng = np.random.default_rng(0)
    obs, actions = rng.normal(size=(64, 39)), rng.uniform(-1, 1, size=(64, 28))
    prior = priors.fit("gp", jax.random.key(0), obs, actions, num_inducing=8, steps=5, kernel="matern12")
    result = run_sweep(cfg, HParams.create(alpha=0.5), expand([0, 1], {}), progress=False, prior=prior,
                       demos=(obs.astype(np.float32), actions.astype(np.float32)), eval_every=60,
                       sweep_dir=tmp_path / "sweep")
    for rows in result.rows:
        evaluated = [r for r in rows if "eval_success" in r]
        assert len(evaluated) == 3  # step 0, then every 60 transitions
        assert all(0.0 <= r["eval_success"] <= 1.0 and np.isfinite(r["eval_return"]) for r in evaluated)
        trained = [r for r in rows if r["epoch"] > 0]
        assert all("train_success" in r for r in trained)
        assert all(r["train_success"] is None or 0.0 <= r["train_success"] <= 1.0 for r in trained)
    run_dir = tmp_path / "sweep" / "base-s1"
    final = json.loads((run_dir / "summary.json").read_text())["final_eval"]
    assert final["episodes"] == 3 and 0.0 <= final["success_rate"] <= 1.0
