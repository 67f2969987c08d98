"""Command line: ``kl-rl train ...``. Each option's help text is its field's docstring."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from kl_rl import compile_cache
from kl_rl.config import TrainConfig

ALGOS = ("sac",)


@dataclass
class TrainArgs:
    """Train an agent on a vectorized MJX environment and write metrics, a curve and params."""

    config: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=TrainConfig)
    algo: str = "sac"
    """Algorithm: sac (soft actor-critic with automatic entropy tuning)."""
    seed: int = 0
    """Seed of every random choice in the run (same seed and machine: same numbers)."""
    lr: float = 3e-4
    """Adam learning rate of the actor, the critics and the temperature."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 5e-3
    """Polyak rate of the target critics."""
    eval_every: int = 5_000
    """Evaluate the deterministic policy every this many transitions (and at the end)."""
    run_name: str | None = None
    """Output folder under runs-dir (default: <env>-<algo>-s<seed>, numbered -2, -3, ... when
    taken, so earlier results are never overwritten)."""
    runs_dir: Path = Path("runs")
    """Folder that holds the run folders."""
    overwrite: bool = False
    """Replace the results of an existing run folder of the same name."""
    compile_cache: str = str(compile_cache.DEFAULT_DIR)
    """Persistent JAX compilation cache folder ("" turns it off); env KL_RL_COMPILE_CACHE."""
    progress: bool = True
    """Show a progress bar (--no-progress for plain logs)."""


def fresh_run_dir(runs_dir: Path, base: str) -> Path:
    """``runs_dir/base``, or ``base-2``, ``base-3``, ... : the first that does not exist yet."""
    candidate, n = runs_dir / base, 1
    while candidate.exists():
        n += 1
        candidate = runs_dir / f"{base}-{n}"
    return candidate


def train(args: TrainArgs) -> int:
    cfg = args.config.validate()
    if args.algo not in ALGOS:
        raise ValueError(f"unknown algo {args.algo!r}; choose one of: {', '.join(ALGOS)}")
    if args.eval_every < 1:
        raise ValueError(f"eval-every must be >= 1 (got {args.eval_every})")
    compile_cache.enable(args.compile_cache)
    from kl_rl.config import HParams
    from kl_rl.driver import run

    hparams = HParams.create(actor_lr=args.lr, critic_lr=args.lr, alpha_lr=args.lr,
                             gamma=args.gamma, tau=args.tau)
    if args.run_name:
        run_dir = args.runs_dir / args.run_name
    else:
        run_dir = fresh_run_dir(args.runs_dir, f"{cfg.env}-{args.algo}-s{args.seed}")
    result = run(cfg, hparams, args.seed, run_dir, eval_every=args.eval_every,
                 progress=args.progress, overwrite=args.overwrite)
    ev = result.final_eval
    print(f"{cfg.env}: {result.rows[-1]['env_steps']} env steps, eval return "
          f"{ev['eval_return']:.1f} (min {ev['eval_return_min']:.1f}, max {ev['eval_return_max']:.1f}) "
          f"over {cfg.eval_episodes} episodes; compile {result.compile_seconds:.1f}s, "
          f"train {result.train_seconds:.1f}s; results in {run_dir}")
    return 0


COMMANDS = {"train": TrainArgs}
HANDLERS = {TrainArgs: train}


def main(argv: list[str] | None = None) -> int:
    args = tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv, prog="kl-rl")
    try:
        return HANDLERS[type(args)](args)
    except (ValueError, FileExistsError) as err:
        print(f"kl-rl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
