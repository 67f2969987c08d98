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
    """Environment: ant, halfcheetah, hopper, walker2d, door (MJX) or pointmass (toy). The expert
    trains on the env's expert env (door: door-dense, the shaped reward) and the demonstrations
    are rolled out on the env itself."""
    expert_steps: int = 100_000
    """Training budget of the expert in env transitions (ignored when an expert is reused)."""
    expert_algo: str = "sac"
    """The expert's algorithm: sac from scratch, or nppac / kl / bc-sac learning from --expert-demos."""
    expert_demos: Path | None = None
    """Demonstrations the expert learns from (nppac, kl, bc-sac), e.g. imported human ones."""
    expert_batch_size: int | None = None
    """Minibatch size of the expert's updates (default: the expert env's preset; door 1024)."""
    hparams: Annotated[HParamOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=HParamOptions)
    episodes: int = 15
    """Demonstration episodes to collect (in parallel)."""
    episode_length: int | None = None
    """Time limit of each demonstration episode (default: the env's preset; 1000, door 200)."""
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
    from kl_rl.config import ALGOS

    if args.expert_algo not in ALGOS:
        raise ValueError(f"unknown expert algo '{args.expert_algo}'; choose one of: {', '.join(ALGOS)}")
    if args.expert_algo != "sac" and args.expert_demos is None:
        raise ValueError(f"expert algo {args.expert_algo} learns from demonstrations: pass --expert-demos FILE")
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
                               log=console.print, expert_algo=args.expert_algo, expert_demos=args.expert_demos,
                               expert_batch_size=args.expert_batch_size)
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
    meta = made.demos.metadata
    if "success_rate" in meta:
        console.print(f"success: expert {meta.get('expert_success', float('nan')):.0%} of "
                      f"{meta.get('expert_success_episodes', 0)} deterministic episodes, demonstrations "
                      f"{meta['success_rate']:.0%} of {made.demos.num_episodes}")
    console.print(f"wrote {made.path} and {made.path.with_suffix('.json')}")
    return 0
