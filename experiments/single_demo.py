"""Can a single expert demonstration be sufficient?

nppac and kl:mlp with the prior (and nppac's pretraining) fitted to one demonstration episode
against all of them (halfcheetah's 15, the door's 25), on halfcheetah and door; every (env,
algorithm, demonstration count) is one sweep program with its seeds vmapped. ``--pick first``
takes the file's first episode, ``--pick best`` its highest-return one: on door, a binary-reward
task whose demonstration file starts with a failed episode, only ``best`` asks the question. The
all-demonstration runs are the runs the priors and door experiments make: where one of them
holds a finished record of the same settings, demonstrations and prior options (``--reuse``),
it is read back instead of trained again. Writes ``<env>.png`` per env (eval return, and success
rate on door, with the KL / critic-gradient / prior-std diagnostics) and ``table.md``.

    python experiments/single_demo.py [--quick] [--envs halfcheetah door] [--demo-counts 1 15]
        [--pick first|best] [--seeds 3] [--total-steps 100000] [--batch-size 256]
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from door import HEADER as SUCCESS_HEADER  # noqa: E402
from door import success_rows  # noqa: E402
from harness import (  # noqa: E402
    RECORDS,
    ROOT,
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

ENVS = ("halfcheetah", "door")
PICKS = ("first", "best")  # kl_rl.demos.PICKS, without importing jax before prepare_jax
LABELS = ("nppac", "kl:mlp")
# where the all-demonstration runs are trained already: the priors experiment's records (the
# locomotion envs) and the door experiment's, from the shipped demonstrations
REUSE = (f"results/priors/{RECORDS}/{{env}}", f"results/door/{RECORDS}/{{env}}-shipped")


def episodes(env: str) -> int:
    """How many episodes the env's shipped demonstrations hold; a one-line error where there are none."""
    from kl_rl import demos as demos_lib
    from kl_rl.envs import ENV_NAMES
    from kl_rl.prior_source import default_demos_path

    if env not in ENV_NAMES:
        raise ValueError(f"--envs {env}: unknown env; choose from {', '.join(sorted(ENV_NAMES))}")
    path = default_demos_path(env)
    if not path.exists():
        raise ValueError(f"--envs {env}: no demonstrations at {path}; make them with `make demos ENV={env}`")
    return demos_lib.load(path).num_episodes


def selections(counts: list[int], available: int) -> list[tuple[int, str]]:
    """(episode count, pick) pairs a table shows: every count with each pick, all episodes once
    (the same set whichever way they are picked)."""
    return [(count, pick) for count in counts for pick in (PICKS if count < available else PICKS[:1])]


def folder_name(count: int, pick: str) -> str:
    """Records folder of ``count`` episodes picked by ``pick`` (the first: ``<count>-demos``)."""
    return f"{count}-demos" if pick == "first" else f"{count}-{pick}-demos"


def demo_label(count: int, pick: str) -> str:
    """The table's name for the demonstrations a row used: "1 demo", "1 best demo", "25 demos"."""
    return f"{count} {'' if pick == 'first' else pick + ' '}demo{'s' if count > 1 else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__, "single_demo")
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--labels", nargs="+", default=list(LABELS), help="algo[:prior] labels")
    parser.add_argument("--demo-counts", type=int, nargs="+", default=None,
                        help="demonstration episodes the prior sees (default: 1 and all of the env's)")
    parser.add_argument("--pick", choices=PICKS, default="first",
                        help="which episodes where fewer than all: the file's first, or the highest-return ones "
                        "(door: best; tables show the records of both)")
    parser.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: each env's preset)")
    parser.add_argument("--reuse", nargs="*", default=None, metavar="DIR",
                        help="records folders of other experiments ({env} replaced) whose runs of the same "
                        "settings stand for these; default: the priors and door experiments' (none with --quick)")
    add_budget_args(parser)
    args = parser.parse_args(argv)
    try:  # the episodes each env's demonstrations hold: 1 to that many may be asked for
        available = {} if args.quick else {env: episodes(env) for env in args.envs}
    except ValueError as err:
        parser.error(str(err))
    for env, count in ((env, count) for env in available for count in args.demo_counts or ()):
        if not 1 <= count <= available[env]:
            parser.error(f"--demo-counts {count}: {env}'s demonstrations hold {available[env]} episodes; "
                         f"choose 1 to {available[env]}")
    prepare_jax()
    started = time.perf_counter()
    out = resolve_out(args)
    envs = ["pointmass"] if args.quick else args.envs
    seeds = 2 if args.quick else args.seeds
    reuse = args.reuse if args.reuse is not None else ([] if args.quick else [str(ROOT / r) for r in REUSE])
    sections, payload = [], {}
    for env in with_recorded(args, envs, ENVS):  # the envs asked for, and those with records: one table
        cfg = base_config(args, env, args.total_steps)
        if args.batch_size is not None and not args.quick:
            cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
        results = {}
        # 1 and all of the env's demonstrations (an env with records only is counted here); quick: the toy's 6
        total = 6 if args.quick else available.get(env) or episodes(env)
        counts = args.demo_counts or [1, total]
        for count, pick in selections(counts, total):
            # the labels asked for train; every label with a record (here or reused) is in the table
            asked = env in envs and (pick == args.pick or count == total)
            by_label = train_labels(args, cfg, args.labels if asked else [], seeds, f"{env}/{folder_name(count, pick)}",
                                    num_demos=count, demo_pick=pick, eval_every=args.eval_every, canonical=LABELS,
                                    reuse=[Path(r.format(env=env)) for r in reuse], read_back=LABELS)
            results.update({f"{label} ({demo_label(count, pick)})": rows for label, rows in by_label.items()})
        if not results:  # records of other settings only
            continue
        rows, summary = report_env(args, "single_demo", env, results, out / f"{env}.png",
                                   f"{env}: 1 vs {max(counts)} demonstrations")
        payload[env] = summary
        success = any("success_final" in rec for rec in summary.values())  # a binary-reward task: success first
        table = markdown_table(SUCCESS_HEADER, success_rows(summary)) if success else markdown_table(SEED_HEADER, rows)
        sections.append(f"## {env}\n\n{seeds_phrase(results)}, {cfg.total_steps:,} env steps each, batch "
                        f"{cfg.validate().batch_size}; the prior (and nppac's pretraining) uses only N demonstration "
                        "episodes: the file's first N, or its N highest-return ones (\"best\"); figure "
                        f"`{env}.png`.\n\n" + table + "\n")
    finish(args, "single_demo", "\n".join(sections), {"envs": payload, "seeds": seeds}, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
