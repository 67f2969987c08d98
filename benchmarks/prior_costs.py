"""Cost of the behavioral priors: fit wall time on shipped demonstrations, and ``predict`` for a
batch of 256 states against one SAC update (the trainer calls predict inside its update).

Both are timed side by side in one process, interleaved round by round (medians), because this
machine is shared and noisy. Each timed call runs 16 updates, or 16 predictions on 16 different
batches, in one jitted scan, as the training loop does.

    python benchmarks/prior_costs.py [--demos data/demos/halfcheetah.npz] [--kinds gp mlp ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, table, write_json  # noqa: E402
from throughput import _kl_rl_update_program  # noqa: E402

from kl_rl import compile_cache, priors  # noqa: E402
from kl_rl import demos as demos_lib  # noqa: E402
from kl_rl.config import TrainConfig  # noqa: E402

CALLS = 16


def _predict_program(prior, states: jax.Array):
    """``CALLS`` predictions of [256, obs] batches in one jitted scan; returns a checksum."""

    @jax.jit
    def run(prior, states):
        def body(total, batch):
            mean, std = priors.predict(prior, batch)
            return total + jnp.sum(mean) + jnp.sum(std), None

        return jax.lax.scan(body, jnp.zeros(()), states)[0]

    return lambda: run(prior, states)


def _time(fn) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demos", type=Path, default=Path("data/demos/halfcheetah.npz"))
    parser.add_argument("--kinds", nargs="+", default=list(priors.KINDS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--cache-dir", default=str(compile_cache.DEFAULT_DIR))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "priors.json")
    args = parser.parse_args(argv)
    compile_cache.enable(args.cache_dir)

    data = demos_lib.load(args.demos)
    obs, act = np.asarray(data.observations), np.asarray(data.actions)
    fits, fitted = {}, {}
    for kind in args.kinds:
        t = time.perf_counter()
        prior, info = priors.fit_with_info(kind, jax.random.key(0), obs, act)
        first = time.perf_counter() - t
        t = time.perf_counter()
        fitted[kind] = priors.fit(kind, jax.random.key(0), obs, act)
        second = time.perf_counter() - t
        fits[kind] = {"first_fit_seconds": first, "second_fit_seconds": second, "options": info["options"]}
        print(f"{kind}: fit {first:.1f} s (first), {second:.1f} s (second)", flush=True)

    cfg = TrainConfig(env=data.metadata.get("env", "halfcheetah"), batch_size=args.batch_size)
    update_step, carry = _kl_rl_update_program(cfg, obs.shape[1], act.shape[1])
    assert cfg.updates_per_iter == CALLS, cfg.updates_per_iter
    picks = np.random.default_rng(0).integers(0, obs.shape[0], (CALLS, args.batch_size))
    states = jnp.asarray(obs[picks])  # [CALLS, B, obs]
    programs = {kind: _predict_program(prior, states) for kind, prior in fitted.items()}
    carry = jax.block_until_ready(update_step(carry))
    for run in programs.values():
        jax.block_until_ready(run())
    update_s: list[float] = []
    predict_s: dict[str, list[float]] = {kind: [] for kind in programs}
    for _ in range(args.rounds):
        t = time.perf_counter()
        carry = jax.block_until_ready(update_step(carry))
        update_s.append(time.perf_counter() - t)
        for kind, run in programs.items():
            predict_s[kind].append(_time(run))
    per_update = float(np.median(update_s)) / CALLS
    rows, results = [], {}
    for kind in programs:
        per_predict = float(np.median(predict_s[kind])) / CALLS
        results[kind] = {**fits[kind], "predict_ms": per_predict * 1e3, "predict_over_update": per_predict / per_update}
        rows.append([kind, fits[kind]["first_fit_seconds"], fits[kind]["second_fit_seconds"], per_predict * 1e3,
                     f"{100 * per_predict / per_update:.1f}%"])
    print()
    print(f"one SAC update (batch {args.batch_size}, 2x256): {per_update * 1e3:.2f} ms (median of {args.rounds})")
    print(table(rows, ["prior", "fit s (1st)", "fit s (2nd)", f"predict ms (B={args.batch_size})",
                       "predict / update"]))
    write_json(args.out, {"demos": str(args.demos), "num_states": int(obs.shape[0]),
                          "num_episodes": data.num_episodes, "sac_update_ms": per_update * 1e3,
                          "batch_size": args.batch_size, "rounds": args.rounds, "machine": machine(),
                          "priors": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
