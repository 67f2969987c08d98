"""N-PPAC against its baselines on one env: nppac, kl with the MLP prior, bc-sac and sac, several
seeds, the same env-step budget, deterministic evaluation. Writes a JSON record (updated after
every run, so an interrupted comparison resumes where it stopped), a learning-curve figure and a
figure of the KL / gradient-norm / prior-std diagnostics.

    python benchmarks/nppac.py [--env halfcheetah] [--total-steps 100000] [--seeds 0 1 2]
                               [--algos nppac kl:mlp bc-sac sac]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, table, write_json  # noqa: E402

from kl_rl import compile_cache  # noqa: E402
from kl_rl.config import HParams, TrainConfig  # noqa: E402
from kl_rl.envs import preset  # noqa: E402
from kl_rl.loop import run  # noqa: E402
from kl_rl.prior_source import Source, demos_and_prior  # noqa: E402
from kl_rl.sweep_summary import area_under_curve  # noqa: E402

DIAGNOSTICS = ("kl_mean", "kl_max", "actor_grad_norm", "critic_grad_norm", "prior_std_min", "q_mean")


def _config(label: str, args: argparse.Namespace) -> TrainConfig:
    algo, _, prior = label.partition(":")
    return TrainConfig(env=args.env, total_steps=args.total_steps, algo=algo, prior=prior or "gp",
                       learning_starts=min(5_000, args.total_steps // 2),
                       pretrain_epochs=args.pretrain_epochs).validate()


def one_run(label: str, args: argparse.Namespace, seed: int) -> dict:
    cfg = _config(label, args)
    hparams = HParams.create(alpha=preset(cfg.env).alpha)
    prior, demos, _, demo_return = demos_and_prior(cfg, Source(demos=args.demos), seed=seed)
    run_dir = args.runs_dir / f"{label.replace(':', '-')}-s{seed}"
    result = run(cfg, hparams, seed, run_dir, eval_every=args.eval_every, progress=False, overwrite=True,
                 tensorboard=False, prior=prior, demos=demos)
    rows = result.rows
    return {"algo": label, "seed": seed, "final_return": result.final_eval["eval_return"],
            "curve": [(r["env_steps"], r["eval_return"]) for r in rows if r.get("eval_return") is not None],
            "diagnostics": {k: [(r["env_steps"], r.get(k)) for r in rows if r.get(k) is not None] for k in DIAGNOSTICS},
            "pretrain_seconds": result.pretrain_seconds, "train_seconds": result.train_seconds,
            "compile_seconds": result.compile_seconds, "demo_return": demo_return, "run_dir": str(run_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--total-steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+", default=["nppac", "kl:mlp", "bc-sac", "sac"])
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--pretrain-epochs", type=int, default=400)
    parser.add_argument("--demos", type=Path, default=None)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/nppac-comparison"))
    parser.add_argument("--cache-dir", default=str(compile_cache.DEFAULT_DIR))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    compile_cache.enable(args.cache_dir)
    out = args.out or Path(__file__).parent / "results" / f"nppac_{args.env}.json"
    record = json.loads(out.read_text()) if out.exists() else {"runs": []}
    if record.get("config", {}).get("total_steps", args.total_steps) != args.total_steps:
        raise SystemExit(f"{out} holds runs of another budget; pass --out for a new record")
    done = {(r["algo"], r["seed"]) for r in record["runs"]}
    for label in args.algos:
        _config(label, args)  # bad labels fail before hours of training
    for seed in args.seeds:
        for label in args.algos:
            if (label, seed) in done:
                continue
            record["runs"].append(one_run(label, args, seed))
            print(f"{label} seed {seed}: final {record['runs'][-1]['final_return']:.1f}", flush=True)
            record.update(config={"env": args.env, "total_steps": args.total_steps, "eval_every": args.eval_every,
                                  "pretrain_epochs": args.pretrain_epochs},
                          machine=machine())
            write_json(out, record)
    rows, summary = [], {}
    for label in args.algos:
        runs = [r for r in record["runs"] if r["algo"] == label and r["seed"] in args.seeds]
        finals = np.array([r["final_return"] for r in runs])
        aucs = np.array([area_under_curve(*map(np.asarray, zip(*r["curve"], strict=True))) for r in runs])
        summary[label] = {"final_mean": float(finals.mean()), "final_min": float(finals.min()),
                          "final_max": float(finals.max()), "auc_mean": float(aucs.mean()),
                          "auc_min": float(aucs.min()), "auc_max": float(aucs.max()), "seeds": len(runs)}
        rows.append([label, len(runs), float(finals.mean()), f"[{finals.min():.0f}, {finals.max():.0f}]",
                     float(aucs.mean()), f"[{aucs.min():.0f}, {aucs.max():.0f}]"])
    record["summary"] = summary
    write_json(out, record)
    print(table(rows, ["algo", "seeds", "final mean", "final range", "AUC mean", "AUC range"]))
    _figures(record, args.algos, out.with_suffix(""))
    return 0


def _figures(record: dict, algos: list[str], stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = record["config"]["env"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for i, label in enumerate(algos):
        curves = [r["curve"] for r in record["runs"] if r["algo"] == label]
        steps = np.array([s for s, _ in curves[0]])
        returns = np.array([[v for _, v in c] for c in curves if len(c) == len(steps)])
        ax.plot(steps, returns.mean(0), "o-", ms=3, color=f"C{i}", label=f"{label} ({len(returns)} seeds)")
        ax.fill_between(steps, returns.min(0), returns.max(0), color=f"C{i}", alpha=0.15, lw=0)
    demo = next((r["demo_return"] for r in record["runs"] if r.get("demo_return")), None)
    if demo:
        ax.axhline(demo, color="0.4", ls="--", lw=1, label="demonstrations")
    ax.set(xlabel="environment steps", ylabel="deterministic eval return (mean, min-max)", title=env)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(stem.with_name(stem.name + "_curves.png"))
    plt.close(fig)

    kl_algos = [a for a in algos if a.split(":")[0] in ("nppac", "kl")]
    names = ("kl_mean", "kl_max", "actor_grad_norm", "critic_grad_norm", "prior_std_min")
    fig, axes = plt.subplots(1, len(names), figsize=(4.0 * len(names), 3.4), dpi=110)
    for ax, name in zip(axes, names, strict=True):
        for i, label in enumerate(algos):
            if name in ("kl_mean", "kl_max", "prior_std_min") and label not in kl_algos:
                continue
            for j, r in enumerate(x for x in record["runs"] if x["algo"] == label):
                series = r["diagnostics"].get(name) or []
                if series:
                    ax.plot(*zip(*series, strict=True), color=f"C{i}", lw=0.8, alpha=0.8,
                            label=label if j == 0 else None)
        ax.set_yscale("symlog" if name == "kl_mean" else "log")
        ax.set_title(name)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=7)  # the grad-norm panels show every algo
    fig.tight_layout()
    fig.savefig(stem.with_name(stem.name + "_diagnostics.png"))
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
