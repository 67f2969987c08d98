"""Throughput of the training loop against the number of vmapped runs and of envs per run.

For each (envs per run, runs) pair, one sweep program (``kl_rl.sweep.SweepPrograms``: the run
axis vmapped, sharded over the devices) of ``--algo`` on ``--env`` with the prior fitted once
from the shipped demonstrations: its compile time, then the median of ``--epochs`` steady
epochs after a warm-up (random actions) and a first learning epoch. Reports env steps/s per run
and in aggregate, and critic updates/s per run. This is the probe that says what a machine can
afford (e.g. a GPU: how many seeds of nppac fit in one program, how long 1M env steps take); no
pretraining is run, since an epoch's cost does not depend on the weights.

    python benchmarks/vmap_scaling.py [--env halfcheetah] [--algo nppac] [--runs 1 8 32 128]
        [--num-envs 16] [--epochs 3] [--set utd=4 ...] [--out benchmarks/results/vmap_scaling.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, table, write_json  # noqa: E402

from kl_rl.config import HParams, TrainConfig, parse_overrides  # noqa: E402


def probe(cfg: TrainConfig, runs: int, epochs: int, prior, demos) -> dict:
    """One sweep program of ``runs`` runs of ``cfg``: compile seconds and steady epoch timings."""
    from kl_rl.loop import demo_transitions
    from kl_rl.sweep import SweepPrograms, expand, padded, stacked_hparams

    programs = SweepPrograms(cfg)
    seeds = list(range(runs))
    hparams = programs.place(stacked_hparams(HParams.create(), padded(expand(seeds, {}), len(programs.devices))))
    t0 = time.perf_counter()
    state = programs.init(seeds, hparams, prior, demo_transitions(cfg, demos, programs.trainer.env, None))
    programs.compile(state, hparams)
    compile_seconds = time.perf_counter() - t0
    times = []
    for i in range(epochs + 2):  # warm-up (random actions, no updates), first learning epoch, timed ones
        t = time.perf_counter()
        state, metrics = programs.epoch(state, hparams)
        jax.block_until_ready(metrics)
        if i >= 2:
            times.append(time.perf_counter() - t)
    median = float(np.median(times))
    per_run = cfg.env_steps_per_epoch / median
    return {"runs": runs, "num_envs": cfg.num_envs, "compile_seconds": compile_seconds, "epoch_seconds": times,
            "env_steps_per_s_per_run": per_run, "env_steps_per_s_aggregate": per_run * runs,
            "updates_per_s_per_run": per_run * cfg.utd,
            "hours_per_1m_env_steps": 1e6 / per_run / 3600}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--algo", default="nppac", help="algo[:prior], e.g. nppac, kl:mlp, sac, rlpd")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 8, 32, 128], help="vmapped runs per program")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16], help="envs per run")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per program")
    parser.add_argument("--steps-per-epoch", type=int, default=2048, help="env steps per run per epoch")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="NAME=VALUE",
                        help="other TrainConfig fields, e.g. utd=4 num_critics=10")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "vmap_scaling.json")
    args = parser.parse_args(argv)
    if min(args.runs) < 1 or min(args.num_envs) < 1 or args.epochs < 1:
        parser.error("--runs, --num-envs and --epochs must be >= 1")
    bad = [n for n in args.num_envs if args.steps_per_epoch % n]
    if bad:
        parser.error(f"--steps-per-epoch {args.steps_per_epoch} is not a multiple of --num-envs {bad}; "
                     "pick one that is")
    algo, _, prior_kind = args.algo.partition(":")
    try:
        overrides = parse_overrides(args.overrides)
        configs = [TrainConfig(env=args.env, algo=algo, **({"prior": prior_kind} if prior_kind else {}),
                               num_envs=n, env_steps_per_epoch=args.steps_per_epoch,
                               learning_starts=args.steps_per_epoch, critic_warmup=0, total_steps=10**8,
                               **overrides).validate() for n in args.num_envs]
    except ValueError as err:
        parser.error(str(err))

    from kl_rl.prior_source import demos_and_prior

    t0 = time.perf_counter()
    prior, demos, _, _ = demos_and_prior(configs[0])
    prior_seconds = time.perf_counter() - t0
    results = []
    for cfg in configs:
        for runs in args.runs:
            row = probe(cfg, runs, args.epochs, prior, demos)
            results.append(row)
            write_json(args.out, {"machine": machine(), "env": args.env, "algo": args.algo,  # each row kept at once
                                  "overrides": args.overrides, "steps_per_epoch": args.steps_per_epoch,
                                  "prior_seconds": prior_seconds, "results": results})
            print(f"num_envs {row['num_envs']} runs {runs}: compile {row['compile_seconds']:.0f} s, "
                  f"{row['env_steps_per_s_per_run']:,.0f} env steps/s per run, "
                  f"{row['env_steps_per_s_aggregate']:,.0f} in all", flush=True)
    header = ["envs/run", "runs", "compile s", "env steps/s per run", "env steps/s in all", "updates/s per run",
              "h per 1M steps"]
    print(table([[r["num_envs"], r["runs"], r["compile_seconds"], r["env_steps_per_s_per_run"],
                  r["env_steps_per_s_aggregate"], r["updates_per_s_per_run"], r["hours_per_1m_env_steps"]]
                 for r in results], header))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
