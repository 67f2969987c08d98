"""The sweep runner: grid expansion, equality with separate runs, sharding over two host
devices with padding, and the per-configuration summary."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_rl.config import HParams
from kl_rl.loop import NonFiniteError
from kl_rl.sweep import expand, padded, parse_grid, run_sweep, stacked_hparams
from kl_rl.sweep_summary import aggregate, summarize, write_summary
from kl_rl.train import Trainer


def test_grid_parsing_and_expansion():
    grid = parse_grid(["alpha=0.03,0.1", "actor_lr=1e-4"])
    assert grid == {"alpha": [0.03, 0.1], "actor_lr": [1e-4]}
    runs = expand([0, 1], grid)
    assert [r.name for r in runs] == ["actor_lr=0.0001,alpha=0.03-s0", "actor_lr=0.0001,alpha=0.03-s1",
                                      "actor_lr=0.0001,alpha=0.1-s0", "actor_lr=0.0001,alpha=0.1-s1"]
    stacked = stacked_hparams(HParams.create(), runs)
    np.testing.assert_allclose(stacked.alpha, [0.03, 0.03, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(stacked.gamma, [0.99] * 4, rtol=1e-6)
    assert len(padded(runs[:3], 2)) == 4 and padded(runs[:3], 2)[-1] == runs[2]
    assert [r.name for r in expand([7], {})] == ["base-s7"]
    for bad, message in (("alpha", "write name=v1,v2"), ("beta=1", "unknown hyperparameter 'beta'"),
                         ("alpha=x", "values must be numbers")):
        with pytest.raises(ValueError, match=message):
            parse_grid([bad])


def test_aggregate_mean_ci_iqm():
    stats = aggregate([1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats["mean"] == pytest.approx(22.0)
    assert stats["iqm"] == pytest.approx(3.0)  # trims the lowest and highest quarter
    assert stats["ci_low"] < stats["mean"] < stats["ci_high"]
    assert aggregate([5.0])["ci_low"] == aggregate([5.0])["ci_high"] == 5.0


@pytest.fixture(scope="module")
def sweep_cfg(tiny_cfg):
    return dataclasses.replace(tiny_cfg, algo="nppac", total_steps=128, pretrain_epochs=2, pretrain_batch_size=16,
                               critic_warmup=0)


def test_sweep_equals_separate_runs(sweep_cfg, pointmass_priors, pointmass_demos, tmp_path):
    """2 seeds x 2 alphas in one program = four separate runs with the same seeds, run for run."""
    prior = pointmass_priors["gp"]
    demos = (np.asarray(pointmass_demos.observations), np.asarray(pointmass_demos.actions))
    runs = expand([0, 1], {"alpha": [0.05, 0.2]})
    result = run_sweep(sweep_cfg, HParams.create(), runs, tmp_path / "sweep", eval_every=64, progress=False,
                       prior=prior, demos=demos)
    trainer = Trainer(sweep_cfg)
    init, pretrain = jax.jit(trainer.init), jax.jit(trainer.pretrain)
    epoch, evaluate = jax.jit(trainer.epoch), jax.jit(trainer.evaluate)
    for i, run in enumerate(runs):
        hparams = HParams.create(alpha=dict(run.overrides)["alpha"])
        state = init(jax.random.key(run.seed), hparams, prior)
        state, _ = pretrain(state, hparams, jnp.asarray(demos[0]), jnp.asarray(demos[1]))
        for _ in range(sweep_cfg.num_epochs):
            state, metrics = epoch(state, hparams)
        single_return = float(evaluate(state)["eval_return"])
        row = result.rows[i][-1]
        np.testing.assert_allclose(row["critic_loss"], float(metrics["critic_loss"]), rtol=1e-3)
        np.testing.assert_allclose(row["kl_mean"], float(metrics["kl_mean"]), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(row["eval_return"], single_return, rtol=1e-3)
        np.testing.assert_allclose(
            result.state.agent.actor_params["params"]["MLP_0"]["Dense_0"]["kernel"][i],
            state.agent.actor_params["params"]["MLP_0"]["Dense_0"]["kernel"], rtol=1e-3, atol=1e-5)
    for run in runs:
        lines = (tmp_path / "sweep" / run.name / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(x)["epoch"] for x in lines] == [0, 1, 2]
        assert (tmp_path / "sweep" / run.name / "params.msgpack").exists()
    table = summarize(runs, result.rows)
    assert [t["config"] for t in table] == ["alpha=0.05", "alpha=0.2"] and table[0]["seeds"] == [0, 1]
    csv_path, md_path = write_summary(tmp_path / "sweep", table)
    assert "alpha=0.2" in md_path.read_text() and len(csv_path.read_text().splitlines()) == 3


SHARDED_SCRIPT = textwrap.dedent("""
    import dataclasses, json, sys
    import jax, numpy as np
    sys.path.insert(0, "tests")
    from conftest import TINY
    from kl_rl.config import HParams
    from kl_rl.sweep import expand, run_sweep
    assert len(jax.devices()) == 2, jax.devices()
    cfg = dataclasses.replace(TINY, total_steps=128)
    runs = expand([0, 1, 2], {"actor_lr": [1e-3]})  # 3 runs: padded to 4 on 2 devices
    out = {}
    for name, devices in (("sharded", jax.devices()), ("single", jax.devices()[:1])):
        res = run_sweep(cfg, HParams.create(), runs, eval_every=64, progress=False, devices=devices)
        out[name] = {"n_rows": len(res.rows), "returns": [r[-1]["eval_return"] for r in res.rows],
                     "critic": [r[-1]["critic_loss"] for r in res.rows],
                     "state_runs": int(res.state.env_steps.shape[0]),
                     "shards": len(res.state.env_steps.sharding.device_set)}
    print(json.dumps(out))
""")


def test_non_finite_run_stops_the_sweep_and_is_named(sweep_cfg, pointmass_priors, pointmass_demos, tmp_path):
    demos = (np.asarray(pointmass_demos.observations), np.asarray(pointmass_demos.actions))
    runs = expand([0], {"critic_lr": [3e-4, float("nan")]})
    with pytest.raises(NonFiniteError, match=r"^run critic_lr=nan-s0, epoch \d+: \w+ is nan"):
        run_sweep(sweep_cfg, HParams.create(), runs, tmp_path / "sweep", eval_every=64, progress=False,
                  prior=pointmass_priors["gp"], demos=demos)
    for run in runs:  # both runs keep their metrics up to the failing epoch
        assert (tmp_path / "sweep" / run.name / "metrics.jsonl").read_text().strip()


def test_sharded_sweep_equals_unsharded_and_drops_padding(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=600, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    sharded, single = out["sharded"], out["single"]
    assert sharded["n_rows"] == single["n_rows"] == 3  # padding dropped from results
    assert sharded["state_runs"] == 4 and sharded["shards"] == 2  # padded, split over both devices
    assert single["state_runs"] == 3 and single["shards"] == 1
    np.testing.assert_allclose(sharded["returns"], single["returns"], rtol=1e-4)
    np.testing.assert_allclose(sharded["critic"], single["critic"], rtol=1e-4)
