"""Could better uncertainty quantification fix the pathology?

KL-regularized SAC toward each behavioral prior (gp = N-PPAC, mlp, ensemble, dropout, floor),
and nppac+ (N-PPAC with RLPD's critics), against plain sac, bc-sac and rlpd at 2 critics and
UTD 1 (what this CPU affords), on each env, several seeds, the same env-step budget; every
algorithm is one sweep program (seeds vmapped) through ``kl_rl.sweep``. Writes per env
``<env>.png`` (eval return with 95% bands, and the KL / critic-gradient / prior-std diagnostics
over training) and ``table.md`` (final and area-under-curve return: mean [95% CI], IQM; the
worst diagnostics).

    python experiments/priors.py [--quick] [--envs ...] [--seeds 3] [--total-steps 100000]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    ENVS,
    SEED_HEADER,
    add_budget_args,
    base_config,
    experiment_parser,
    finish,
    markdown_table,
    prepare_jax,
    report_env,
    resolve_out,
    seeds_phrase,
    train_labels,
    with_recorded,
)

LABELS = ("nppac", "nppac+", "kl:mlp", "kl:ensemble", "kl:dropout", "kl:floor", "bc-sac", "sac",
          "rlpd@num_critics=2,utd=1")  # rlpd at what this CPU affords (README, "What it costs")


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__, "priors")
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--labels", nargs="+", default=list(LABELS), help="algo[:prior] labels")
    add_budget_args(parser)
    args = parser.parse_args(argv)
    prepare_jax()
    started = time.perf_counter()
    out = resolve_out(args)
    envs = ["pointmass"] if args.quick else args.envs
    seeds = 2 if args.quick else args.seeds
    sections, payload = [], {}
    for env in with_recorded(args, envs, ENVS):  # the envs asked for, and those with records: one table
        cfg = base_config(args, env, args.total_steps)
        results = train_labels(args, cfg, args.labels if env in envs else [], seeds, env,
                               eval_every=args.eval_every, canonical=LABELS)
        if not results:  # records of other settings only
            continue
        rows, summary = report_env(args, "priors", env, results, out / f"{env}.png",
                                   f"{env}: {seeds_phrase(results)}, {cfg.total_steps:,} steps")
        payload[env] = summary
        sections.append(f"## {env}\n\n{seeds_phrase(results)}, {cfg.total_steps:,} env steps each; "
                        f"figure `{env}.png`.\n\n"
                        + markdown_table(SEED_HEADER, rows) + "\n")
    finish(args, "priors", "\n".join(sections), {"envs": payload, "seeds": seeds}, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
