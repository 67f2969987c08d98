"""One run without a run axis against a vmap of one, side by side in one process.

``kl_rl.loop.train_runs`` runs R runs through one set of compiled programs; ``kl-rl train``
is R = 1. This measures whether R = 1 should run ``Trainer.epoch`` as it is (``SingleRun``) or
as the sweep's vmapped, sharded program with one run (``SweepPrograms`` on one device): the
median epoch time of each, timed in alternating rounds so both see the same machine load.

    python benchmarks/single_vs_vmap.py [--env halfcheetah] [--rounds 7]
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

from kl_rl.config import HParams, TrainConfig  # noqa: E402
from kl_rl.loop import SingleRun  # noqa: E402
from kl_rl.sweep import SweepPrograms, expand, stacked_hparams  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--algo", default="sac")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "single_vs_vmap.json")
    args = parser.parse_args(argv)
    cfg = TrainConfig(env=args.env, algo=args.algo, total_steps=10**6, learning_starts=1024).validate()
    hparams = HParams.create()
    single = SingleRun(cfg)
    vmapped = SweepPrograms(cfg, jax.devices()[:1])
    states, hps = {}, {"single": hparams, "vmap of one": stacked_hparams(hparams, expand([0], {}))}
    compile_seconds = {}
    for name, programs in (("single", single), ("vmap of one", vmapped)):
        t = time.perf_counter()
        hp = programs.place(hps[name])
        state = programs.init([0], hp, None)
        programs.compile(state, hp)
        state, _ = programs.epoch(state, hp)  # the warm-up epoch (no updates)
        state, metrics = programs.epoch(state, hp)  # the first learning epoch
        jax.block_until_ready(metrics)
        states[name], hps[name] = state, hp
        compile_seconds[name] = time.perf_counter() - t
    times: dict[str, list[float]] = {name: [] for name in states}
    for _ in range(args.rounds):
        for name, programs in (("single", single), ("vmap of one", vmapped)):
            t = time.perf_counter()
            states[name], metrics = programs.epoch(states[name], hps[name])
            jax.block_until_ready(metrics)
            times[name].append(time.perf_counter() - t)
    rows, rates = [], {}
    for name, seconds in times.items():
        rates[name] = cfg.env_steps_per_epoch / float(np.median(seconds))
        rows.append([name, compile_seconds[name], float(np.median(seconds)), rates[name],
                     rates[name] * cfg.updates_per_iter / cfg.num_envs])
    print(table(rows, ["R = 1 as", "compile + 2 epochs (s)", "epoch (s, median)", "env steps/s", "updates/s"]))
    ratio = rates["single"] / rates["vmap of one"]
    print(f"single over vmap of one: {ratio:.3f}")
    payload = {"config": {"env": cfg.env, "algo": cfg.algo, "num_envs": cfg.num_envs, "batch_size": cfg.batch_size,
                          "env_steps_per_epoch": cfg.env_steps_per_epoch, "rounds": args.rounds},
               "machine": machine(), "epoch_seconds": times, "env_steps_per_s": rates,
               "single_over_vmap_of_one": ratio, "compile_seconds": compile_seconds}
    print(f"wrote {write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
