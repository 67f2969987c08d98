"""``kl-rl fit-prior``: fit a behavioral prior, save it, and compare it with the other kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from kl_rl import compile_cache
from kl_rl.priors import KINDS, PriorOptions


@dataclass
class FitPriorArgs:
    """Fit a behavioral prior pi0 to demonstrations, save it, and write diagnostics and pictures."""

    demos: Path = Path("data/demos/halfcheetah.npz")
    """Demonstrations file (.npz with its .json), e.g. data/demos/<env>.npz."""
    prior: str = "gp"
    """Prior kind to fit and save: gp, mlp, ensemble, dropout or floor."""
    out: Path | None = None
    """Output folder (default runs/priors/<env>-<prior>); refused if it holds a prior, unless --overwrite."""
    options: Annotated[PriorOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=PriorOptions)
    compare: tuple[str, ...] = KINDS
    """Prior kinds measured side by side in the table and pictures (--prior is always included)."""
    num_demos: int | None = None
    """Use only the first N demonstration episodes."""
    holdout_episodes: int = 3
    """Episodes held out (the last ones) for NLL/RMSE; the diagnostics use priors fitted without
    them, the saved prior is refitted on all episodes. 0: no held-out metrics."""
    rollout_episodes: int = 5
    """Episodes of the mean-action rollout in the env (0 skips it)."""
    seed: int = 0
    """Seed of the fits and the probes."""
    overwrite: bool = False
    """Replace a prior already in --out."""
    compile_cache: str = str(compile_cache.DEFAULT_DIR)
    """Persistent JAX compilation cache folder ("" turns it off); env KL_RL_COMPILE_CACHE."""


def fit_prior(args: FitPriorArgs) -> int:
    from kl_rl.priors.compare import CompareSpec, check, fit_and_compare

    spec = CompareSpec(demos=args.demos, prior=args.prior, out=args.out, options=args.options, compare=args.compare,
                       num_demos=args.num_demos, holdout_episodes=args.holdout_episodes,
                       rollout_episodes=args.rollout_episodes, seed=args.seed, overwrite=args.overwrite)
    check(spec)
    compile_cache.enable(args.compile_cache)
    from rich.console import Console
    from rich.table import Table

    from kl_rl.priors.compare import HEADER, cells
    from kl_rl.priors.diagnostics import FAR_SCALE

    console = Console() if Console().is_terminal else Console(width=140)
    rows, _, _ = fit_and_compare(spec, log=console.print)
    table = Table(title=f"priors on {args.demos} (std far: probes at {FAR_SCALE:g} std from the demos)")
    for name in HEADER:
        table.add_column(name, justify="right")
    for kind, row in rows.items():
        table.add_row(*cells(kind, row))
    console.print(table)
    return 0
