"""``kl-rl sweep``: seeds x float hyperparameters as one compiled program per static choice."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from kl_rl import compile_cache
from kl_rl.config import HParamOptions, TrainConfig
from kl_rl.host_devices import split_cpu_devices
from kl_rl.prior_source import Source


@dataclass
class SweepArgs:
    """Train every (seed, hyperparameter) combination together: one vmapped program, its run axis
    sharded over all JAX devices; per-run metrics, and summary.csv / summary.md / curves.png per
    static choice (final and area-under-curve return: mean, 95% bootstrap CI, IQM)."""

    config: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: TrainConfig(algo="nppac"))
    hparams: Annotated[HParamOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=HParamOptions)
    seeds: int = 4
    """Seeds 0 .. N-1 for every grid point."""
    grid: Annotated[list[str], tyro.conf.UseAppendAction] = field(default_factory=list)
    """A float hyperparameter and its values, repeatable: --grid alpha=0.03,0.1,0.3 --grid actor_lr=1e-4,3e-4
    (names: actor_lr, critic_lr, alpha_lr, gamma, tau, init_alpha, alpha, entropy_per_dim, demo_ratio)."""
    static: tuple[str, ...] = ()
    """Static choices run as separate programs one after the other, as algo[:prior][@name=value,...],
    e.g. nppac kl:mlp sac rlpd@utd=2 nppac@critic_recipe=rlpd (default: --algo with --prior)."""
    source: Annotated[Source, tyro.conf.OmitArgPrefixes] = field(default_factory=Source)
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


def sweep(args: SweepArgs) -> int:
    if args.distributed or args.coordinator_address:
        import jax

        jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
    else:
        split_cpu_devices(args.host_devices)  # before anything starts JAX's CPU backend (importing kl_rl.sweep does)
    from rich.console import Console

    from kl_rl import sweep as sweeps

    console = Console() if Console().is_terminal else Console(width=140)
    if args.resume is not None:
        compile_cache.enable(args.compile_cache)
        _show(console, sweeps.resume_sweeps(args.resume, args.progress, args.checkpoint_every, args.keep_checkpoints))
        return 0
    grid = sweeps.parse_grid(args.grid)
    config = args.hparams.configure(args.config)
    if "demo_ratio" in grid and not config.validate().demos_in_batch:
        raise ValueError("--grid demo_ratio needs the demonstrations in the batch: use --algo rlpd, or "
                         "--demos-in-batch True (or --demo-ratio above 0)")
    if args.seeds < 1:
        raise ValueError(f"seeds must be >= 1 (got {args.seeds})")
    if args.eval_every < 1:
        raise ValueError(f"eval-every must be >= 1 (got {args.eval_every})")
    labels = list(args.static) or [config.algo + (f":{config.prior}" if config.algo == "kl" else "")]
    for label in labels:  # every static choice is checked before anything trains
        args.hparams.hparams(config.env, sweeps.label_config(config, label).algo)
    compile_cache.enable(args.compile_cache)
    import jax

    runs = sweeps.expand(range(args.seeds), grid)
    root = args.runs_dir / (args.sweep_name or f"sweep-{config.env}-{config.algo}")
    console.print(f"{len(runs)} runs per static choice on {len(jax.devices())} device(s): {jax.devices()}")
    done = sweeps.sweep_labels(config, labels, runs, root, hparams=args.hparams, source=args.source,
                               eval_every=args.eval_every,
                               overwrite=args.overwrite, progress=args.progress,
                               checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints)
    _show(console, done)
    return 0


def _show(console, done) -> None:
    import jax

    if jax.process_index() != 0:  # multi-host: process 0 wrote the results and shows them
        console.print(f"process {jax.process_index()}: done; process 0 wrote the results")
        return
    for one in done:
        result = one.result
        console.print(f"[bold]{one.label}[/bold]: {len(result.runs)} runs, compile {result.compile_seconds:.1f} s, "
                      f"train {result.train_seconds:.1f} s" +
                      (f"; demonstrations' mean return {one.demo_return:.1f}" if one.demo_return is not None else ""))
        console.print((one.sweep_dir / "summary.md").read_text())
        console.print(f"results in {one.sweep_dir} (summary.csv, summary.md, curves.png, one folder per run)")
