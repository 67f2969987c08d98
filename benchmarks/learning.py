"""Learning check: kl_rl SAC and Brax's SAC on the same MJX env, same budget, several seeds.

Final deterministic evaluation returns side by side (mean and range over seeds), a JSON record
and a figure of the evaluation curves.

    python benchmarks/learning.py [--env halfcheetah] [--total-steps 50000] [--seeds 0 1 2]

Brax's SAC cannot resume by itself. For a Brax baseline longer than one sitting, pass
--brax-checkpoint-dir (it saves after every evaluation and resumes from there when run again
with the same arguments) and optionally --stop-after-minutes:

    python benchmarks/learning.py --env walker2d --total-steps 1000000 --seeds 0 --impls brax \
        --num-evals 21 --brax-checkpoint-dir runs/brax_walker2d --stop-after-minutes 120
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from brax_resume import BraxCheckpointError  # noqa: E402
from harness import machine, run_brax_sac, table, write_json  # noqa: E402

from kl_rl import compile_cache  # noqa: E402
from kl_rl.config import HParams, TrainConfig  # noqa: E402
from kl_rl.loop import run as run_kl_rl  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--total-steps", type=int, default=50_000)
    parser.add_argument("--learning-starts", type=int, default=5_000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-evals", type=int, default=6, help="evaluations including the initial one")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--cache-dir", default=str(compile_cache.DEFAULT_DIR))
    parser.add_argument("--impls", nargs="+", choices=["kl_rl", "brax"], default=["kl_rl", "brax"],
                        help="which implementations to run (brax alone: the baseline for an expert's budget)")
    parser.add_argument("--brax-checkpoint-dir", type=Path, default=None,
                        help="save Brax's SAC after every evaluation here and resume from it when present")
    parser.add_argument("--stop-after-minutes", type=float, default=None,
                        help="stop Brax's SAC after the first evaluation past this time (needs --brax-checkpoint-dir)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "learning.json")
    args = parser.parse_args(argv)
    if args.stop_after_minutes is not None and args.brax_checkpoint_dir is None:
        parser.error("--stop-after-minutes needs --brax-checkpoint-dir, or the stopped run is lost")
    if args.num_evals < 2:
        parser.error(f"--num-evals {args.num_evals}: needs at least 2 (the initial evaluation and a final one)")
    compile_cache.enable(args.cache_dir)
    deadline = None if args.stop_after_minutes is None else time.monotonic() + 60 * args.stop_after_minutes

    cfg = TrainConfig(env=args.env, num_envs=args.num_envs, total_steps=args.total_steps,
                      learning_starts=args.learning_starts, eval_episodes=args.eval_episodes).validate()
    eval_every = (cfg.total_steps - cfg.learning_starts) // (args.num_evals - 1)
    results: dict[str, list[dict]] = {name: [] for name in args.impls}
    for seed in args.seeds:
        if "brax" in args.impls:
            checkpoint = (None if args.brax_checkpoint_dir is None
                          else args.brax_checkpoint_dir / f"brax_sac_{cfg.env}_seed{seed}.npz")
            try:
                stopped = _run_brax(cfg, seed, args.num_evals, results, checkpoint, deadline)
            except BraxCheckpointError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            if stopped:
                print(f"stopped after {args.stop_after_minutes} minutes; {checkpoint} holds the run: rerun the same "
                      f"command to go on ({args.out} not written)", flush=True)
                return 0
        if "kl_rl" not in args.impls:
            continue
        t = time.perf_counter()
        res = run_kl_rl(cfg, HParams.create(), seed, run_dir=None, eval_every=eval_every, progress=False)
        results["kl_rl"].append({
            "seed": seed, "eval_return": res.final_eval["eval_return"], "env_steps": res.rows[-1]["env_steps"],
            "wall_seconds": time.perf_counter() - t,
            "curve": [(r["env_steps"], r["eval_return"]) for r in res.rows if r.get("eval_return") is not None],
        })
        print(f"kl_rl seed {seed}: {results['kl_rl'][-1]['eval_return']:.1f}", flush=True)

    rows, summary = [], {}
    for name, label in (("kl_rl", "kl_rl SAC"), ("brax", "Brax SAC")):
        if name not in results:
            continue
        finals = np.array([r["eval_return"] for r in results[name]])
        summary[name] = {"mean": float(finals.mean()), "min": float(finals.min()), "max": float(finals.max()),
                         "per_seed": finals.tolist()}
        rows.append([label, len(finals), float(finals.mean()), float(finals.min()), float(finals.max()),
                     " ".join(f"{v:.0f}" for v in finals)])
    print()
    print(table(rows, ["", "seeds", "mean", "min", "max", "per seed"]))
    _figure(results, args.out.with_suffix(".png"), f"{cfg.env}: deterministic eval return, {len(args.seeds)} seeds")
    write_json(args.out, {"config": {"env": cfg.env, "total_steps": cfg.total_steps, "num_envs": cfg.num_envs,
                                     "learning_starts": cfg.learning_starts, "seeds": args.seeds,
                                     "eval_episodes": cfg.eval_episodes},
                          "machine": machine(), "summary": summary, "runs": results,
                          "notes": "Both warm up for learning_starts transitions without updates: kl_rl with "
                                   "uniform random actions, Brax with its initial policy (its prefill)."})
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


def _run_brax(cfg: TrainConfig, seed: int, num_evals: int, results: dict[str, list[dict]],
              checkpoint: Path | None, deadline: float | None) -> bool:
    """Runs (or resumes) Brax's SAC for one seed; returns True when it stopped at the deadline.
    Its wall time adds up the sittings, so a resumed run reports its whole cost."""
    out = run_brax_sac(cfg.env, num_envs=cfg.num_envs, total_steps=cfg.total_steps,
                       learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, utd=cfg.utd,
                       episode_length=cfg.episode_length, num_evals=num_evals,
                       eval_episodes=cfg.eval_episodes, seed=seed, checkpoint=checkpoint, deadline=deadline)
    if out["stopped"]:
        return True
    results["brax"].append({"seed": seed, "eval_return": out["eval_return"], "env_steps": out["env_steps"],
                            "wall_seconds": out["wall_seconds"], "curve": out["curve"]})
    print(f"brax seed {seed}: {out['eval_return']:.1f}", flush=True)
    return False


def _figure(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for color, (name, label) in zip(("C0", "C1"), (("kl_rl", "kl_rl SAC"), ("brax", "Brax SAC")), strict=True):
        for i, run in enumerate(results.get(name, [])):
            steps, returns = zip(*run["curve"], strict=True)
            ax.plot(steps, returns, "o-", color=color, alpha=0.8, ms=3, label=label if i == 0 else None)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("deterministic eval return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
