"""``kl-rl sweep``: seeds x float hyperparameters as one compiled program per static choice."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from kl_rl import compile_cache
from kl_rl.config import TrainConfig
from kl_rl.fit_prior import PriorOptionArgs


@dataclass
class SweepArgs:
    """Train every (seed, hyperparameter) combination together: one vmapped program, its run axis
    sharded over all JAX devices; per-run metrics, and summary.csv / summary.md / curves.png per
    static choice (final and area-under-curve return: mean, 95% bootstrap CI, IQM)."""

    config: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: TrainConfig(algo="nppac"))
    seeds: int = 4
    """Seeds 0 .. N-1 for every grid point."""
    grid: Annotated[list[str], tyro.conf.UseAppendAction] = field(default_factory=list)
    """A float hyperparameter and its values, repeatable: --grid alpha=0.03,0.1,0.3 --grid actor_lr=1e-4,3e-4
    (names: actor_lr, critic_lr, alpha_lr, gamma, tau, init_alpha, alpha, entropy_per_dim)."""
    static: tuple[str, ...] = ()
    """Static choices run as separate programs one after the other, as algo[:prior], e.g.
    nppac kl:mlp sac (default: --algo with --prior)."""
    alpha: float | None = None
    """KL weight where --grid does not set it; default: the env's preset."""
    lr: float = 3e-4
    """Adam learning rate (actor, critics, temperature) where --grid does not set it."""
    demos: Path | None = None
    """Demonstrations (default: data/demos/<env>.npz, shipped)."""
    num_demos: int | None = None
    """Use only the first N demonstration episodes."""
    prior_path: Path | None = None
    """Load the prior from a `kl-rl fit-prior` folder instead of fitting it."""
    prior_options: Annotated[PriorOptionArgs, tyro.conf.OmitArgPrefixes] = field(default_factory=PriorOptionArgs)
    prior_cache: str | None = None
    """Fitted-prior cache folder ("" turns it off); default ~/.cache/kl_rl/priors or KL_RL_PRIOR_CACHE."""
    eval_every: int = 5_000
    """Evaluate every run's deterministic policy every this many transitions (and at the end)."""
    sweep_name: str | None = None
    """Output folder under runs-dir (default: sweep-<env>-<algo>)."""
    runs_dir: Path = Path("runs")
    """Folder that holds the sweep folders."""
    overwrite: bool = False
    """Replace the results of existing run folders of the same names."""
    compile_cache: str = str(compile_cache.DEFAULT_DIR)
    """Persistent JAX compilation cache folder ("" turns it off); env KL_RL_COMPILE_CACHE."""
    progress: bool = True
    """Show a progress bar."""
    distributed: bool = False
    """Multi-host: call jax.distributed.initialize() first (auto-detects Slurm, Open MPI, Cloud TPU;
    elsewhere give --coordinator-address, --num-processes and --process-id)."""
    coordinator_address: str | None = None
    """Multi-host: host:port of process 0 (implies --distributed)."""
    num_processes: int | None = None
    """Multi-host: number of processes."""
    process_id: int | None = None
    """Multi-host: this process's index (0 writes the results)."""
    checkpoint_every: int = 10
    """Checkpoint the whole sweep state every this many epochs (and after pretraining, at the end, on Ctrl-C)."""
    keep_checkpoints: int = 3
    """Checkpoints kept (the newest)."""
    resume: Path | None = None
    """Continue this sweep folder (the one holding sweep.json) from its latest checkpoint, with its
    saved settings; other options are ignored."""
    host_devices: int = -1
    """CPU: split the CPU into this many XLA host devices so the run axis is sharded over the cores
    (-1: one per core; 0: JAX's default of one device). Ignored by accelerators; an
    --xla_force_host_platform_device_count already in XLA_FLAGS wins."""


def split_cpu_devices(host_devices: int = -1) -> None:
    """Sets the XLA host device count before JAX starts its CPU backend (measured faster than one
    vmapped device on a 2-core CPU: benchmarks/sweep.py)."""
    import os

    flags = os.environ.get("XLA_FLAGS", "")
    if host_devices == 0 or "xla_force_host_platform_device_count" in flags:
        return
    count = (os.cpu_count() or 1) if host_devices < 0 else host_devices
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def sweep(args: SweepArgs) -> int:
    if args.distributed or args.coordinator_address:
        import jax

        jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
    else:
        split_cpu_devices(args.host_devices)  # before anything starts JAX's CPU backend (importing kl_rl.sweep does)
    from kl_rl.sweep import expand, parse_grid

    if args.resume is not None:
        return _resume(args)
    grid = parse_grid(args.grid)
    if args.seeds < 1:
        raise ValueError(f"seeds must be >= 1 (got {args.seeds})")
    if args.eval_every < 1:
        raise ValueError(f"eval-every must be >= 1 (got {args.eval_every})")
    labels = list(args.static) or [args.config.algo + (f":{args.config.prior}" if args.config.algo == "kl" else "")]
    configs = []
    for label in labels:  # every static choice is checked before anything trains
        algo, _, prior = label.partition(":")
        configs.append((label, dataclasses.replace(args.config, algo=algo, prior=prior or "gp").validate()))
    compile_cache.enable(args.compile_cache)
    import jax
    from rich.console import Console

    from kl_rl.cli import demos_and_prior
    from kl_rl.config import PRESETS, HParams
    from kl_rl.sweep import run_sweep

    console = Console() if Console().is_terminal else Console(width=140)
    runs = expand(range(args.seeds), grid)
    root = args.runs_dir / (args.sweep_name or f"sweep-{args.config.env}-{args.config.algo}")
    console.print(f"{len(runs)} runs per static choice on {len(jax.devices())} device(s): {jax.devices()}")
    for label, cfg in configs:
        alpha = args.alpha if args.alpha is not None else float(PRESETS[cfg.env]["alpha"])
        base = HParams.create(actor_lr=args.lr, critic_lr=args.lr, alpha_lr=args.lr, alpha=alpha)
        prior, demos, _, demo_return = demos_and_prior(cfg, args.demos, args.num_demos, args.prior_options,
                                                       args.prior_cache, args.prior_path, 0)
        sweep_dir = root / label.replace(":", "-") if len(configs) > 1 else root
        result = run_sweep(cfg, base, runs, sweep_dir, eval_every=args.eval_every, progress=args.progress,
                           prior=prior, demos=demos, overwrite=args.overwrite, checkpoint_every=args.checkpoint_every,
                           keep_checkpoints=args.keep_checkpoints)
        _finish(console, label, cfg, runs, result, sweep_dir, demo_return)
    return 0


def _finish(console, label, cfg, runs, result, sweep_dir: Path, demo_return: float | None) -> None:
    from kl_rl.sweep_summary import curves_figure, summarize, write_summary

    table = summarize(runs, result.rows)
    _, md = write_summary(sweep_dir, table)
    curves_figure(runs, result.rows, sweep_dir / "curves.png", title=f"{cfg.env} · {label}")
    console.print(f"[bold]{label}[/bold]: {len(runs)} runs, compile {result.compile_seconds:.1f} s, "
                  f"train {result.train_seconds:.1f} s" +
                  (f"; demonstrations' mean return {demo_return:.1f}" if demo_return is not None else ""))
    console.print(md.read_text())
    console.print(f"results in {sweep_dir} (summary.csv, summary.md, curves.png, one folder per run)")


def _resume(args: SweepArgs) -> int:
    """``--resume DIR``: every sweep folder at or under DIR (one per static choice) continues from
    its latest checkpoint with its saved sweep.json."""
    import json

    from rich.console import Console

    from kl_rl import priors
    from kl_rl.config import HParams, config_from_json
    from kl_rl.driver import ConfigChangedError
    from kl_rl.sweep import run_sweep, runs_from_record

    folders = [args.resume] if (args.resume / "sweep.json").exists() else sorted(
        p.parent for p in args.resume.glob("*/sweep.json"))
    if not folders:
        raise ConfigChangedError(f"{args.resume} is not a kl-rl sweep folder (no sweep.json); check the --resume path")
    compile_cache.enable(args.compile_cache)
    console = Console() if Console().is_terminal else Console(width=140)
    for folder in folders:
        record = json.loads((folder / "sweep.json").read_text())
        cfg = config_from_json(record["config"]).validate()
        runs = runs_from_record(record)
        prior = priors.load(folder / "prior") if cfg.uses_prior else None
        result = run_sweep(cfg, HParams.create(**record["hparams"]), runs, folder, eval_every=record["eval_every"],
                           progress=args.progress, prior=prior, checkpoint_every=args.checkpoint_every,
                           keep_checkpoints=args.keep_checkpoints, resume=True)
        _finish(console, cfg.algo, cfg, runs, result, folder, None)
    return 0
