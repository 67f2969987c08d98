"""Sweep throughput: aggregated env steps/s of N runs trained as one vmapped program (on one
device, and with the run axis sharded over several devices) against the same N runs trained one
after another, same per-run budget. On a CPU, ``--host-devices 2`` splits the CPU into two XLA
host devices (one per core) with ``--xla_force_host_platform_device_count``.

Every mode runs in its own subprocess (device count is fixed at JAX start-up); each times
``--epochs`` steady epochs after one warm-up epoch with updates (compile excluded), medians.

    python benchmarks/sweep.py [--env halfcheetah] [--runs 8] [--host-devices 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import table, write_json  # noqa: E402

CHILD = r"""
import json, sys, time
import jax, numpy as np
from kl_rl import compile_cache
from kl_rl.config import HParams, TrainConfig
from kl_rl.sweep import SweepPrograms, expand, stacked_hparams, padded
from kl_rl.train import Trainer
args = json.loads(sys.argv[1])
compile_cache.enable(args["cache_dir"])
cfg = TrainConfig(env=args["env"], algo="sac", total_steps=10**7, learning_starts=args["steps_per_epoch"],
                  env_steps_per_epoch=args["steps_per_epoch"]).validate()
hp = HParams.create()
times = []
if args["mode"] == "sequential":
    trainer = Trainer(cfg)
    state = jax.jit(trainer.init)(jax.random.key(0), hp)
    epoch = jax.jit(trainer.epoch, donate_argnums=0)
    runs = 1
    step = lambda s: epoch(s, hp)
else:
    programs = SweepPrograms(cfg, jax.devices())
    runs_list = padded(expand(range(args["runs"]), {}), len(jax.devices()))
    runs = len(runs_list)
    hps = programs.place(stacked_hparams(hp, runs_list))
    state = programs.init(list(range(runs)), hps, None)
    step = lambda s: programs.epoch(s, hps)
for i in range(args["epochs"] + 2):  # warm-up (no updates), first learning epoch, then timed ones
    t = time.perf_counter()
    state, metrics = step(state)
    jax.block_until_ready(metrics)
    if i >= 2:
        times.append(time.perf_counter() - t)
median = float(np.median(times))
print(json.dumps({"mode": args["mode"], "devices": [str(d) for d in jax.devices()], "runs": runs,
                  "epoch_seconds": times, "aggregate_env_steps_per_s": runs * args["steps_per_epoch"] / median}))
"""


def child(mode: str, args: argparse.Namespace, host_devices: int = 1) -> dict:
    env = dict(os.environ)
    if host_devices > 1:
        flag = f"--xla_force_host_platform_device_count={host_devices}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    payload = {"mode": mode, "env": args.env, "runs": args.runs, "epochs": args.epochs,
               "steps_per_epoch": args.steps_per_epoch, "cache_dir": args.cache_dir}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from kl_rl import compile_cache

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--host-devices", type=int, default=2, help="CPU only: XLA host devices for the sharded mode")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=1024)
    parser.add_argument("--cache-dir", default=str(compile_cache.DEFAULT_DIR))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sweep.json")
    args = parser.parse_args(argv)
    import jax

    on_cpu = jax.default_backend() == "cpu"
    results = {"sequential": child("sequential", args), "vmap": child("vmap", args)}
    if on_cpu and args.host_devices > 1:
        results["sharded"] = child("sharded", args, args.host_devices)
    elif not on_cpu and len(jax.devices()) > 1:
        results["sharded"] = child("sharded", args)
    base = results["sequential"]["aggregate_env_steps_per_s"]
    rows = [[mode, r["runs"], len(r["devices"]), r["aggregate_env_steps_per_s"],
             f"{r['aggregate_env_steps_per_s'] / base:.2f}x"] for mode, r in results.items()]
    print(table(rows, ["mode", "runs", "devices", "env steps/s (all runs)", "vs sequential"]))
    config = {k: v for k, v in vars(args).items() if k not in ("cache_dir", "out")}  # no machine paths
    write_json(args.out, {"config": config, "backend": jax.default_backend(),
                          "results": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
