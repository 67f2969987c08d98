"""Sweeps: many runs of one static configuration as a single compiled program.

The cartesian product of seeds and float hyperparameter values becomes a leading run axis;
``Trainer.init`` / ``pretrain`` / ``epoch`` / ``evaluate`` are vmapped over it and compiled once,
and the axis is sharded over ``jax.devices()`` with a 1-D ``NamedSharding``. A run count not
divisible by the device count is padded by repeating the last run; the padding is dropped from
every result. Multi-host: call ``jax.distributed.initialize()`` first (see README); the run axis
then spans every host's devices.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from kl_rl.config import HParams, TrainConfig
from kl_rl.driver import check_finite, prepare_run_dir, save_params
from kl_rl.metrics_log import MetricsWriter, to_python
from kl_rl.train import Trainer

HPARAM_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(HParams))


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its seed and the hyperparameters it changes."""

    seed: int
    overrides: tuple[tuple[str, float], ...]

    @property
    def config_name(self) -> str:
        """The grid point, shared by every seed of it (e.g. ``alpha=0.1``; ``base`` if none)."""
        return ",".join(f"{k}={v:g}" for k, v in self.overrides) or "base"

    @property
    def name(self) -> str:
        return f"{self.config_name}-s{self.seed}"


def parse_grid(items: Sequence[str]) -> dict[str, list[float]]:
    """``["alpha=0.03,0.1", "actor_lr=1e-4"]`` -> {"alpha": [0.03, 0.1], "actor_lr": [1e-4]};
    one-line ValueError for an unknown name or a bad number."""
    grid: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise ValueError(f"bad --grid '{item}'; write name=v1,v2,... e.g. alpha=0.03,0.1,0.3")
        if name not in HPARAM_NAMES:
            raise ValueError(f"--grid: unknown hyperparameter '{name}'; choose among {', '.join(HPARAM_NAMES)}")
        try:
            grid[name] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ValueError(f"--grid {name}: values must be numbers, got '{values}'") from None
    return grid


def expand(seeds: Sequence[int], grid: dict[str, Sequence[float]]) -> list[SweepRun]:
    """Every (grid point, seed) pair, grid points outermost, in a fixed order."""
    names = sorted(grid)
    points = list(itertools.product(*(grid[n] for n in names))) if names else [()]
    return [SweepRun(int(seed), tuple(zip(names, point, strict=True))) for point in points for seed in seeds]


def stacked_hparams(base: HParams, runs: Sequence[SweepRun]) -> HParams:
    """HParams with a leading run axis: ``base`` with each run's overrides."""
    values = {name: np.full(len(runs), float(getattr(base, name)), np.float32) for name in HPARAM_NAMES}
    for i, run in enumerate(runs):
        for name, value in run.overrides:
            values[name][i] = value
    return HParams(**{name: jnp.asarray(v) for name, v in values.items()})


def padded(runs: list[SweepRun], num_devices: int) -> list[SweepRun]:
    """Runs padded with copies of the last one to a multiple of ``num_devices``."""
    return runs + [runs[-1]] * ((-len(runs)) % num_devices)


@dataclass
class SweepResult:
    runs: list[SweepRun]
    rows: list[list[dict[str, Any]]] = field(default_factory=list)  # per run, per epoch (step 0 first)
    state: Any = None  # final TrainState with the padded run axis
    compile_seconds: float = 0.0
    train_seconds: float = 0.0


class SweepPrograms:
    """The vmapped, jitted and sharded programs of one static configuration."""

    def __init__(self, cfg: TrainConfig, devices: Sequence[jax.Device] | None = None):
        self.trainer = Trainer(cfg)
        self.devices = list(devices if devices is not None else jax.devices())
        mesh = Mesh(np.asarray(self.devices), ("runs",))
        self.sharding = NamedSharding(mesh, PartitionSpec("runs"))
        t = self.trainer
        self.init = jax.jit(jax.vmap(t.init, in_axes=(0, 0, None)), out_shardings=self.sharding)
        self.pretrain = jax.jit(jax.vmap(t.pretrain, in_axes=(0, 0, None, None)), out_shardings=self.sharding)
        self.epoch = jax.jit(jax.vmap(t.epoch), out_shardings=self.sharding, donate_argnums=0)
        self.evaluate = jax.jit(jax.vmap(t.evaluate), out_shardings=self.sharding)

    def place(self, tree: Any) -> Any:
        """Puts arrays with a leading run axis on the devices, split along that axis."""
        return jax.device_put(tree, self.sharding)


def fetch(tree: Any) -> Any:
    """Host copy of run-axis arrays; across several processes (multi-host), gathered from all."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def sweep_record(cfg: TrainConfig, base: HParams, runs: Sequence[SweepRun], eval_every: int) -> dict[str, Any]:
    """What a sweep folder's ``sweep.json`` holds: enough to resume it, and to refuse a changed one."""
    return json.loads(json.dumps({
        "config": dataclasses.asdict(cfg), "hparams": {n: float(getattr(base, n)) for n in HPARAM_NAMES},
        "runs": [{"seed": r.seed, "overrides": dict(r.overrides)} for r in runs], "eval_every": eval_every}))


def runs_from_record(record: dict[str, Any]) -> list[SweepRun]:
    return [SweepRun(int(r["seed"]), tuple(sorted(r["overrides"].items()))) for r in record["runs"]]


def run_sweep(cfg: TrainConfig, base: HParams, runs: list[SweepRun], sweep_dir: Path | None = None,
              eval_every: int = 5_000, progress: bool = True, prior: Any = None,
              demos: tuple[np.ndarray, np.ndarray] | None = None, devices: Sequence[jax.Device] | None = None,
              overwrite: bool = False, programs: SweepPrograms | None = None, checkpoint_every: int = 10,
              keep_checkpoints: int = 3, resume: bool = False) -> SweepResult:
    """Trains every run of ``runs`` together. With ``sweep_dir`` writes, per run,
    ``<sweep_dir>/<run.name>/metrics.jsonl``, ``params.msgpack``, ``summary.json`` and
    ``config.json`` (the same files as ``kl-rl train``, TensorBoard aside), and in ``sweep_dir``
    ``sweep.json``, the prior and orbax checkpoints of the whole vmapped state (after pretraining,
    every ``checkpoint_every`` epochs, at the end, on Ctrl-C; single-host only). ``resume``
    continues ``sweep_dir`` from its latest checkpoint."""
    from rich.progress import Progress

    from kl_rl import checkpoint
    from kl_rl.driver import ConfigChangedError, SigintFlag, truncate_metrics, write_json_atomic

    programs = programs or SweepPrograms(cfg, devices)
    all_runs = padded(runs, len(programs.devices))
    n_real = len(runs)
    run_dirs: list[Path] = []
    writers: list[MetricsWriter] = []
    writes = sweep_dir is not None and jax.process_index() == 0  # one writer when several hosts run the sweep
    record = sweep_record(cfg, base, runs, eval_every)
    if resume:
        saved = Path(sweep_dir) / "sweep.json"
        if not saved.exists():
            raise ConfigChangedError(f"{sweep_dir} is not a kl-rl sweep folder (no sweep.json); "
                                     "check the --resume path")
        if json.loads(saved.read_text()) != record:
            raise ConfigChangedError(f"cannot resume {sweep_dir} with a changed sweep (config, grid, seeds or "
                                     "eval-every differ from its sweep.json); start a new sweep")
        run_dirs = [Path(sweep_dir) / run.name for run in runs] if writes else []
    elif writes:
        for run in runs:
            run_dir = prepare_run_dir(Path(sweep_dir) / run.name, overwrite)
            hp = {name: float(getattr(base, name)) for name in HPARAM_NAMES} | dict(run.overrides)
            write_json_atomic(run_dir / "config.json", {"config": dataclasses.asdict(cfg), "hparams": hp,
                                                        "seed": run.seed, "eval_every": eval_every,
                                                        "sweep": str(sweep_dir)})
            run_dirs.append(run_dir)
        prepare_run_dir(Path(sweep_dir), overwrite)  # clears old checkpoints / prior of the sweep itself
        write_json_atomic(Path(sweep_dir) / "sweep.json", record)
        if prior is not None:
            from kl_rl import priors

            priors.save(prior, Path(sweep_dir) / "prior")
    keys = programs.place(jax.vmap(jax.random.key)(jnp.asarray([r.seed for r in all_runs])))
    hparams = programs.place(stacked_hparams(base, all_runs))
    result = SweepResult(runs=runs, rows=[[] for _ in runs])
    t0 = time.perf_counter()
    state = programs.init(keys, hparams, prior)
    ckpt = checkpoint.manager(Path(sweep_dir), keep_checkpoints) if writes and jax.process_count() == 1 else None
    if resume:
        if ckpt is None:
            raise ConfigChangedError("resuming a sweep needs its folder and a single host")
        state, loop = checkpoint.restore(Path(sweep_dir), state)
        state = programs.place(state)
        result.rows = [truncate_metrics(d / "metrics.jsonl", loop["epoch"]) for d in run_dirs]
        start, next_eval = loop["epoch"], loop["next_eval"]
    elif cfg.uses_demos and cfg.pretrain_epochs:
        state, _ = programs.pretrain(state, hparams, *map(jnp.asarray, demos))
    result.compile_seconds = time.perf_counter() - t0
    writers = [MetricsWriter(d, tensorboard=False) for d in run_dirs]
    interrupted = SigintFlag()
    t_train = time.perf_counter()
    try:
        if not resume:
            _log(result, writers, {"epoch": 0, "env_steps": 0, "grad_steps": 0}, fetch(programs.evaluate(state)),
                 n_real)
            start, next_eval = 0, eval_every
            if ckpt is not None:
                checkpoint.save(ckpt, 0, state, {"epoch": 0, "next_eval": next_eval})
        with Progress(disable=not progress) as bar, interrupted:
            task = bar.add_task(f"{cfg.env} sweep ({n_real} runs)", total=cfg.num_epochs, completed=start)
            for index in range(start, cfg.num_epochs):
                state, metrics = programs.epoch(state, hparams)
                metrics = fetch(metrics)
                evaluation = {}
                last_epoch = index + 1 == cfg.num_epochs
                if metrics["env_steps"][0] >= next_eval or last_epoch:
                    next_eval += eval_every
                    evaluation = fetch(programs.evaluate(state))
                _log(result, writers, {"epoch": index + 1, **metrics,
                                       "wall_seconds": time.perf_counter() - t_train}, evaluation, n_real)
                for i in range(n_real):  # one non-finite run stops every run of the program
                    check_finite({k: v[i] for k, v in metrics.items()}, index + 1, runs[i].name)
                due = checkpoint_every and (index + 1) % checkpoint_every == 0
                if ckpt is not None and (due or last_epoch or interrupted.raised):
                    checkpoint.save(ckpt, index + 1, state, {"epoch": index + 1, "next_eval": next_eval})
                if interrupted.raised:
                    raise KeyboardInterrupt(f"interrupted after epoch {index + 1}" + (
                        f"; checkpoint saved, continue with --resume {sweep_dir}" if ckpt is not None else ""))
                bar.update(task, advance=1)
    finally:
        for writer in writers:
            writer.close()
        if ckpt is not None:
            ckpt.close()
    result.train_seconds = time.perf_counter() - t_train
    result.state = state
    host_state = fetch(state) if run_dirs else None
    for i, run_dir in enumerate(run_dirs):
        one = jax.tree.map(lambda x, i=i: x[i], host_state)
        save_params(one, run_dir / "params.msgpack")
        final = result.rows[i][-1]
        write_json_atomic(run_dir / "summary.json", {
            "env": cfg.env, "algo": cfg.algo, "seed": runs[i].seed, "overrides": dict(runs[i].overrides),
            "env_steps": final["env_steps"], "compile_seconds": result.compile_seconds,
            "train_seconds": result.train_seconds, "resumed": resume,
            **{k: v for k, v in final.items() if k.startswith("eval_")}})
    return result


def _log(result: SweepResult, writers: list[MetricsWriter], metrics: dict[str, Any], evaluation: dict[str, Any],
         n_real: int) -> None:
    """Splits run-axis metrics into one row per (real) run and writes them."""
    for i in range(n_real):
        row = {k: to_python(v[i]) if np.ndim(v) else to_python(v) for k, v in metrics.items()}
        row.update({k: to_python(v[i]) for k, v in evaluation.items()})
        result.rows[i].append(row)
        if writers:
            writers[i].write(row, step=row["env_steps"])

