"""``kl-rl demos``: train (or reuse) an expert and roll out its demonstrations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from kl_rl import compile_cache
from kl_rl.config import HParamOptions


@dataclass
class DemosArgs:
    """Train (or reuse) an expert with kl_rl SAC, roll it out with Gaussian action noise, and write
    data/demos/<env>.npz + .json and the expert to data/experts/<env>/."""

    env: str = "halfcheetah"
    """Environment: ant, halfcheetah, hopper, walker2d (MJX) or pointmass (toy)."""
    expert_steps: int = 100_000
    """Training budget of the expert in env transitions (ignored when an expert is reused)."""
    hparams: Annotated[HParamOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=HParamOptions)
    episodes: int = 15
    """Demonstration episodes to collect (in parallel)."""
    episode_length: int = 1000
    """Time limit of each demonstration episode."""
    noise_std: float = 0.1
    """Std of the Gaussian noise added to the expert's deterministic action (then clipped)."""
    seed: int = 0
    """Seed of the expert's training and of the demonstration rollouts."""
    data_dir: Path = Path("data")
    """Folder that receives demos/<env>.npz|.json and experts/<env>/."""
    retrain: bool = False
    """Train a new expert even when data/experts/<env> already holds a finished one (or an
    interrupted one, which is otherwise resumed from its last checkpoint)."""
    compile_cache: str = str(compile_cache.DEFAULT_DIR)
    """Persistent JAX compilation cache folder ("" turns it off); env KL_RL_COMPILE_CACHE."""
    progress: bool = True
    """Show a progress bar while the expert trains."""


def demos(args: DemosArgs) -> int:
    from kl_rl.envs import check_env_name

    check_env_name(args.env)
    critic_lr = float(args.hparams.hparams(args.env).critic_lr)
    if args.episodes < 1 or args.noise_std < 0 or args.expert_steps < 1 or critic_lr <= 0:
        raise ValueError("episodes and expert-steps must be >= 1, noise-std >= 0 and critic-lr > 0 "
                         f"(got {args.episodes}, {args.expert_steps}, {args.noise_std}, {critic_lr:g})")
    compile_cache.enable(args.compile_cache)
    from rich.console import Console
    from rich.table import Table

    from kl_rl.experts import make_demonstrations

    console = Console()
    if not console.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        console = Console(width=120)
    made = make_demonstrations(args.env, args.expert_steps, args.hparams, args.episodes, args.episode_length,
                               args.noise_std, args.seed, args.data_dir, args.retrain, args.progress,
                               log=console.print)
    returns = made.demos.episode_returns
    table = Table(title=f"{args.env} demonstrations")
    for column in ("expert return", "demo mean", "min", "max", "episodes", "steps", "noise", "budget",
                   "train s" if made.trained_now else "load s", "collect s"):
        table.add_column(column, justify="right")
    table.add_row(f"{made.expert.summary['eval_return']:.1f}", f"{returns.mean():.1f}", f"{returns.min():.1f}",
                  f"{returns.max():.1f}", str(made.demos.num_episodes), str(made.demos.num_steps),
                  f"{args.noise_std:g}", f"{made.expert.summary['env_steps']:,}", f"{made.train_seconds:.0f}",
                  f"{made.collect_seconds:.0f}")
    console.print(table)
    console.print(f"wrote {made.path} and {made.path.with_suffix('.json')}")
    return 0
