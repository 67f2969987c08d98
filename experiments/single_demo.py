"""Can a single expert demonstration be sufficient?

nppac and kl+mlp with the prior fitted to 1 demonstration episode against all 15, on
halfcheetah; every (algorithm, demonstration count) is one sweep program with its seeds
vmapped. Writes ``single_demo.png`` (eval return and diagnostics) and ``table.md``.

    python experiments/single_demo.py [--quick] [--env halfcheetah] [--seeds 3] [--total-steps 100000]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    SEED_HEADER,
    add_budget_args,
    base_config,
    curves_and_diagnostics,
    experiment_parser,
    finish,
    markdown_table,
    prepare_jax,
    resolve_out,
    seed_table,
    train_labels,
    update_summary_csv,
)


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__, "single_demo")
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--labels", nargs="+", default=["nppac", "kl:mlp"])
    parser.add_argument("--demo-counts", type=int, nargs="+", default=[1, 15])
    add_budget_args(parser)
    args = parser.parse_args(argv)
    prepare_jax()
    started = time.perf_counter()
    out = resolve_out(args)
    seeds = 2 if args.quick else args.seeds
    cfg = base_config(args, args.env, args.total_steps)
    results = {}
    counts = [1, 6] if args.quick else args.demo_counts  # the quick demonstrations hold 6 episodes
    for count in counts:
        by_label = train_labels(args, cfg, args.labels, seeds, f"{cfg.env}/{count}-demos", num_demos=count,
                                eval_every=args.eval_every)
        results.update({f"{label} ({count} demo{'s' if count > 1 else ''})": rows for label, rows in by_label.items()})
    rows, summary = seed_table(results)
    update_summary_csv(args, "single_demo", cfg.env, summary, results)
    curves_and_diagnostics(results, out / "single_demo.png", f"{cfg.env}: 1 vs {max(counts)} demonstrations")
    text = (f"{cfg.env}, {seeds} seeds, {cfg.total_steps:,} env steps each; the prior (and nppac's pretraining) "
            "uses only the first N demonstration episodes.\n\n" + markdown_table(SEED_HEADER, rows) + "\n")
    finish(args, "single_demo", text, {"results": summary, "seeds": seeds}, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
