"""Do demonstrations get a binary-reward agent through the door, and does the GP prior help?

nppac, nppac+, kl:mlp, bc-sac, sac and rlpd (2 critics, UTD 1) on ``door`` (reward 0 when the
door is open past 1.35 rad, else -1), several seeds, the same env-step budget, each label one
sweep program with its seeds vmapped; once from the shipped demonstrations (rollouts of kl_rl's own door expert,
``data/demos/door.npz``) and once from DAPG's 25 human demonstrations (the paper's). sac uses no
demonstrations, so it runs once and appears in both sections. Writes ``door.png`` per source
(eval return and success rate with 95% bands, and the KL / critic-gradient / prior-std
diagnostics) and ``table.md`` (final success rate and its area under the curve: mean [95% CI];
final return; the worst diagnostics).

The human demonstrations are third-party data (hand_dapg, Apache-2.0): they are imported
(``kl_rl.dapg``) into ``<out>/runs/``, which git ignores, and never committed.

    python experiments/door.py [--quick] [--sources shipped human] [--human PICKLE]
        [--seeds 3] [--total-steps 100000] [--batch-size 1024]
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    ROOT,
    add_budget_args,
    base_config,
    experiment_parser,
    final_eval_cell,
    finish,
    markdown_table,
    ordered,
    prepare_jax,
    report_env,
    resolve_out,
    seeds_phrase,
    train_labels,
    with_recorded,
)

LABELS = ("nppac", "nppac+", "kl:mlp", "bc-sac", "sac", "rlpd@num_critics=2,utd=1")
SOURCES = ("shipped", "human")
DAPG_PICKLE = ROOT.parent / "shared" / "data" / "dapg" / "door-v0_demos.pickle"
HEADER = ["algo", "seeds", "final success: mean [95% CI]", "success AUC: mean [95% CI]", "final return: mean [95% CI]",
          "final eval success per seed", "max KL", "min prior std", "train min"]


def human_demos(path: Path, out: Path) -> Path:
    """DAPG's pickle imported into ``<out>/runs/human/door_human.npz`` (once; git ignores runs/)."""
    from kl_rl import demos as demos_lib
    from kl_rl.dapg import import_dapg

    target = out / "runs" / "human" / "door_human.npz"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        demos_lib.save(import_dapg(path), target)
    return target


def success_rows(summary: dict) -> list[list[str]]:
    """One table row per label of ``harness.seed_table``'s summary: success first (door's
    measure), then return and the worst diagnostics."""
    from kl_rl.sweep_summary import format_ci

    def cell(value: float) -> str:
        return "-" if value != value else f"{value:.3g}"

    rows = []
    for label, rec in summary.items():
        if "diverged" in rec:
            rows.append([label, "-", f"diverged at {rec['diverged_at_env_steps']:,} steps", "-", "-", "-",
                         cell(rec["kl_max"]), cell(rec["prior_std_min"]), f"{rec['train_minutes']:.0f}"])
            continue
        success = [format_ci(rec[k], 2) if k in rec else "-" for k in ("success_final", "success_auc")]
        rows.append([label, str(rec["final"]["n"]), *success, format_ci(rec["final"]),
                     final_eval_cell(rec, "success_rate"), cell(rec["kl_max"]),
                     cell(rec["prior_std_min"]), f"{rec['train_minutes']:.0f}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    from kl_rl.sweep import label_config

    parser = experiment_parser(__doc__, "door")
    parser.add_argument("--labels", nargs="+", default=list(LABELS), help="algo[:prior] labels")
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=None,
                        help="demonstrations: shipped (data/demos/door.npz) and/or human (DAPG's 25); "
                        "default both, or shipped alone where --human does not exist")
    parser.add_argument("--human", type=Path, default=DAPG_PICKLE, help="DAPG's door-v0_demos.pickle")
    parser.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: the preset, 1024)")
    add_budget_args(parser)
    args = parser.parse_args(argv)
    if args.sources is None:
        args.sources = list(SOURCES) if args.human.exists() else ["shipped"]
        if not args.human.exists() and not args.quick:
            print(f"door: no human demonstrations at {args.human}; running the shipped ones only", flush=True)
    if "human" in args.sources and not args.quick and not args.human.exists():
        parser.error(f"--human {args.human}: no such file; pass DAPG's door-v0_demos.pickle, or --sources shipped")
    prepare_jax()
    started = time.perf_counter()
    out = resolve_out(args)
    env = "pointmass" if args.quick else "door"
    seeds = 2 if args.quick else args.seeds
    cfg = base_config(args, env, args.total_steps)
    if args.batch_size is not None and not args.quick:
        cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
    batch_size = cfg.validate().batch_size  # the preset's where not given
    # sac never reads demonstrations: one run of it serves every source
    free = [label for label in args.labels if not label_config(cfg, label).uses_demos]
    shared = train_labels(args, cfg, free, seeds, f"{env}-no-demos", eval_every=args.eval_every)
    sections, payload = [], {}
    # quick: the pointmass toy's demonstrations; else the sources asked for and those with records
    for source in ["shipped"] if args.quick else with_recorded(args, args.sources, SOURCES, lambda s: f"{env}-{s}"):
        trains = args.quick or source in args.sources
        demos = human_demos(args.human, out) if source == "human" and trains else None
        learned = train_labels(args, cfg, [x for x in args.labels if x not in free] if trains else [], seeds,
                               f"{env}-{source}", demos=demos, eval_every=args.eval_every)
        if not (trains or learned):  # a source with records of other settings only
            continue
        results = {label: (shared | learned)[label] for label in ordered([*shared, *learned], LABELS)}
        figure = out / f"{env}-{source}.png"
        _, summary = report_env(args, f"door-{source}", env, results, figure,
                                f"{env}, {source} demonstrations: {seeds_phrase(results)}")
        payload[source] = summary
        sections.append(f"## {source} demonstrations\n\n{seeds_phrase(results)}, {cfg.total_steps:,} env steps "
                        f"each, batch {batch_size}; figure `{figure.name}`.\n\n"
                        + markdown_table(HEADER, success_rows(summary)) + "\n")
    finish(args, "door", "\n".join(sections), {"sources": payload, "seeds": seeds, "env": env,
                                                "batch_size": batch_size}, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
