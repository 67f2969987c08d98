"""The door env's speed on this machine: the raw vectorized step rate at several env counts, and
the training loop's env steps/s (nppac on door, UTD 1) at the door preset's batch of 1024 and at
256. Times the second and later calls of each compiled program (compilation is reported apart).

    python benchmarks/door.py [--envs 4 16 32] [--batch-sizes 1024 256] [--epochs 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compile_timer, machine, table, write_json  # noqa: E402

from kl_rl.config import HParams, TrainConfig  # noqa: E402
from kl_rl.envs import make_env  # noqa: E402
from kl_rl.loop import SingleRun  # noqa: E402


def raw_step_rate(num_envs: int, steps: int = 40) -> tuple[float, float]:
    """(env steps/s of the vmapped door step with random actions, compile seconds)."""
    env = make_env("door", num_envs, 200)
    run = jax.jit(lambda s, a: jax.lax.scan(lambda p, x: (env.step_physics(p, x), None), s, a)[0])
    actions = jax.random.uniform(jax.random.key(1), (steps, num_envs, env.action_size), minval=-1, maxval=1)
    physics = jax.jit(env.reset)(jax.random.key(0)).physics
    with compile_timer() as timer:
        physics = jax.block_until_ready(run(physics, actions))
    t = time.perf_counter()
    jax.block_until_ready(run(physics, actions))
    return steps * num_envs / (time.perf_counter() - t), timer["compile_seconds"]


def loop_rate(batch_size: int, epochs: int) -> tuple[float, float, float]:
    """(env steps/s, updates/s of the training epoch with updates on, compile seconds): nppac on
    door with a small GP prior fitted to random states (its cost per update is the real one)."""
    from kl_rl import priors

    cfg = TrainConfig(env="door", algo="nppac", batch_size=batch_size, total_steps=10**6, learning_starts=1024,
                      pretrain_epochs=0).validate()
    rng = np.random.default_rng(0)
    prior = priors.fit("gp", jax.random.key(0), rng.normal(size=(512, 39)), rng.uniform(-1, 1, (512, 28)),
                       num_inducing=64, steps=5, kernel="matern12")
    programs = SingleRun(cfg)
    hparams = HParams.create(alpha=0.5)
    state = programs.init([0], hparams, prior)
    with compile_timer() as timer:
        programs.compile(state, hparams)
        state, _ = programs.epoch(state, hparams)  # the warm-up epoch, no updates
        state, _ = programs.epoch(state, hparams)  # updates from here on
    seconds = []
    for _ in range(epochs):
        t = time.perf_counter()
        state, metrics = programs.epoch(state, hparams)
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - t)
    per_epoch = float(np.median(seconds))
    return cfg.env_steps_per_epoch / per_epoch, cfg.env_steps_per_epoch * cfg.utd / per_epoch, timer["compile_seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, nargs="+", default=[4, 16, 32])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 256])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "door.json")
    args = parser.parse_args(argv)
    raw = []
    for n in args.envs:
        rate, compile_s = raw_step_rate(n)
        raw.append({"num_envs": n, "env_steps_per_s": rate, "compile_seconds": compile_s})
    print(table([[r["num_envs"], r["env_steps_per_s"], r["compile_seconds"]] for r in raw],
                ["envs", "raw env steps/s", "compile s"]))
    loop = []
    for batch in args.batch_sizes:
        steps_s, updates_s, compile_s = loop_rate(batch, args.epochs)
        loop.append({"batch_size": batch, "env_steps_per_s": steps_s, "updates_per_s": updates_s,
                     "compile_seconds": compile_s, "num_envs": 16, "utd": 1})
    print(table([[r["batch_size"], r["env_steps_per_s"], r["updates_per_s"], r["compile_seconds"]] for r in loop],
                ["batch (nppac, 16 envs, UTD 1)", "env steps/s", "updates/s", "compile s"]))
    write_json(args.out, {"machine": machine(), "raw": raw, "loop": loop})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
