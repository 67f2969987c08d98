"""Does N-PPAC keep its head start? `kl-rl train --env <env>` with its defaults (nppac), several
seeds per env, the deterministic evaluation every 5k env steps; per env the demonstrations' mean
return, the return after pretraining, the lowest evaluation after it and the final one, against
the acceptance bars: pretraining >= 80% of the demonstrations, never below 70% afterwards, the
final >= the demonstrations.

    python benchmarks/head_start.py [--envs halfcheetah hopper walker2d ant] [--seeds 0 1 2]
        [--total-steps 50000] [--set warmup_actions=random critic_warmup=0 ...]

Each (env, seed) is a label: its record goes to ``<out>/<env>-s<seed>.json`` when it finishes and
a rerun skips it, so a stopped benchmark continues where it was; an interrupted run resumes from
its checkpoint in ``--runs-dir``. Two invocations (e.g. one per core, with different --envs) can
share one --out. Every invocation rebuilds the table (``table.md``) and ``head_start.json`` from
all the records there. ``--set name=value`` changes a TrainConfig field (e.g. the reference's
recipe: warmup_actions=random critic_warmup=0 mean_action_weight=0 kl_in_target=True) and ``--alpha`` the KL
weight; records that ran another program (another resolved config, e.g. after a preset changed) are
refused at the start rather than mixed into one table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, write_json  # noqa: E402

from kl_rl import compile_cache  # noqa: E402
from kl_rl.config import HParams, TrainConfig, parse_overrides  # noqa: E402
from kl_rl.envs import ENV_NAMES, preset  # noqa: E402

ENVS = ("halfcheetah", "hopper", "walker2d", "ant")
PRETRAIN_BAR, FLOOR_BAR, FINAL_BAR = 0.8, 0.7, 1.0


def settings(args: argparse.Namespace) -> dict[str, object]:
    """What every record of one table must share."""
    return {"total_steps": args.total_steps, "eval_every": args.eval_every, "overrides": args.overrides,
            "alpha": args.alpha}


def config_for(env: str, args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(env=env, algo="nppac", total_steps=args.total_steps, **args.overrides).validate()


def ran_otherwise(record: dict, args: argparse.Namespace) -> bool:
    """Whether ``record`` ran another program than this invocation would for its env: another
    resolved config (a default or preset changed since, or other --set values), KL weight or
    evaluation interval. Old records' configs are read with the settings they ran with."""
    from kl_rl.config import config_from_json

    normal = lambda cfg: json.loads(json.dumps(dataclasses.asdict(cfg)))  # noqa: E731
    alpha = args.alpha if args.alpha is not None else preset(record["env"]).alpha
    return (normal(config_from_json(record["config"]).validate()) != normal(config_for(record["env"], args))
            or record["alpha"] != alpha or record["settings"]["eval_every"] != args.eval_every)


def one_run(env: str, seed: int, args: argparse.Namespace) -> dict:
    """One `kl-rl train` with the defaults (plus --set), resumed from its checkpoint if stopped."""
    from kl_rl.loop import run
    from kl_rl.prior_source import demos_and_prior

    cfg = config_for(env, args)
    alpha = args.alpha if args.alpha is not None else preset(env).alpha
    hparams = HParams.create(alpha=alpha)
    prior, demos, extra, demo_return = demos_and_prior(cfg, seed=seed)
    run_dir = args.runs_dir / f"{env}-s{seed}"
    resume = (run_dir / "checkpoints").exists() and (run_dir / "metrics.jsonl").exists()
    t0 = time.perf_counter()
    result = run(cfg, hparams, seed, run_dir, eval_every=args.eval_every, progress=False, overwrite=not resume,
                 tensorboard=False, prior=prior, demos=demos, extra_config=extra, resume=resume)
    rows = result.rows
    curve = [(r["env_steps"], r["eval_return"]) for r in rows if r.get("eval_return") is not None]
    lengths = [(r["env_steps"], r.get("train_length"), r.get("train_return"), r.get("kl_mean"), r.get("q_mean"))
               for r in rows[1:]]
    return {"env": env, "seed": seed, "alpha": alpha, "demo_return": demo_return, "curve": curve,
            "train_episodes": lengths, "config": dataclasses.asdict(cfg), "settings": settings(args),
            "pretrain_seconds": result.pretrain_seconds, "train_seconds": result.train_seconds,
            "compile_seconds": result.compile_seconds, "wall_seconds": time.perf_counter() - t0,
            "run_dir": str(run_dir), "machine": machine()}


def summarize(records: list[dict]) -> list[dict]:
    """Per env: the demonstrations' return and, over seeds, the return after pretraining, the
    lowest evaluation after it and the final one, each also as a fraction of the demonstrations."""
    rows = []
    for env in ENVS + tuple(sorted({r["env"] for r in records} - set(ENVS))):
        mine = [r for r in records if r["env"] == env]
        if not mine:
            continue
        demo = mine[0]["demo_return"]
        pre = np.array([r["curve"][0][1] for r in mine])
        low = np.array([min(v for _, v in r["curve"][1:]) for r in mine])
        final = np.array([r["curve"][-1][1] for r in mine])
        rows.append({
            "env": env, "seeds": [r["seed"] for r in mine], "demo_return": demo,
            "env_steps": mine[0]["curve"][-1][0],
            "pretrain_mean": float(pre.mean()), "pretrain_min": float(pre.min()),
            "lowest_after": float(low.min()), "final_mean": float(final.mean()), "final_min": float(final.min()),
            "pretrain_ok": bool(pre.min() >= PRETRAIN_BAR * demo),
            "floor_ok": bool(low.min() >= FLOOR_BAR * demo),
            "final_ok": bool(final.min() >= FINAL_BAR * demo),
            "curves": {str(r["seed"]): r["curve"] for r in mine},
        })
    return rows


def render(rows: list[dict]) -> str:
    def pct(x: float, demo: float) -> str:
        return f"{x:.0f} ({100 * x / demo:.0f}%)"

    def mark(ok: bool) -> str:
        return "yes" if ok else "no"

    header = ["env", "seeds", "demos' mean", "after pretraining: mean", "lowest eval after",
              "final: mean", ">= 80% pretrained", ">= 70% always", ">= demos at end"]
    body = [[r["env"], str(len(r["seeds"])), f"{r['demo_return']:.0f}",
             f"{pct(r['pretrain_mean'], r['demo_return'])}, min {r['pretrain_min']:.0f}",
             pct(r["lowest_after"], r["demo_return"]),
             f"{pct(r['final_mean'], r['demo_return'])}, min {r['final_min']:.0f}",
             mark(r["pretrain_ok"]), mark(r["floor_ok"]), mark(r["final_ok"])] for r in rows]
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header), *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--total-steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--alpha", type=float, default=None, help="KL weight (default: each env's preset)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/head_start"))
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/head_start"))
    parser.add_argument("--report-only", action="store_true", help="rebuild the table from the records")
    args = parser.parse_args(argv)
    try:
        args.overrides = parse_overrides(args.overrides)
    except ValueError as err:
        parser.error(str(err))
    unknown = [e for e in args.envs if e not in ENV_NAMES]
    if unknown:
        parser.error(f"unknown env {', '.join(unknown)}; choose from {', '.join(ENV_NAMES)}")
    for env in args.envs:  # one-line refusals before anything is fitted or compiled
        try:
            config_for(env, args)
        except ValueError as err:
            parser.error(str(err))
    args.out.mkdir(parents=True, exist_ok=True)
    existing = [json.loads(p.read_text()) for p in sorted(args.out.glob("*-s*.json"))]
    clash = [r for r in existing if ran_otherwise(r, args)]
    if clash and not args.report_only:
        parser.error(f"{args.out} holds records that ran other settings ({clash[0]['env']}-s{clash[0]['seed']}: "
                     f"{clash[0]['settings']}, or a default changed since); pass another --out or move them")
    compile_cache.enable(str(compile_cache.DEFAULT_DIR))
    if not args.report_only:
        for env in args.envs:
            for seed in args.seeds:
                path = args.out / f"{env}-s{seed}.json"
                if path.exists():
                    print(f"{env} seed {seed}: done before, skipped", flush=True)
                    continue
                record = one_run(env, seed, args)
                write_json(path, record)
                print(f"{env} seed {seed}: " + ", ".join(f"{s}: {v:.0f}" for s, v in record["curve"]), flush=True)
    records = [json.loads(p.read_text()) for p in sorted(args.out.glob("*-s*.json"))]
    rows = summarize(records)
    text = render(rows)
    print(text)
    walls = [r["wall_seconds"] for r in records]
    labels = ", ".join(f"{r['env']}-s{r['seed']}" for r in records)
    (args.out / "table.md").write_text(
        f"Built from the records in `{args.out}` ({labels}), each written by `python benchmarks/head_start.py "
        f"--envs ENV --seeds SEED` with settings {json.dumps(settings(args))}; "
        f"rebuild with `python benchmarks/head_start.py --report-only --out {args.out}`.\n\n"
        f"Machine: {records[0]['machine'] if records else machine()}\n\n"
        f"Wall time per run (pretraining, compiling, training, evaluations): {min(walls, default=0):.0f}-"
        f"{max(walls, default=0):.0f} s, {sum(walls):.0f} s in all.\n\n{text}\n")
    write_json(args.out.parent / f"{args.out.name}.json", {"settings": settings(args), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
