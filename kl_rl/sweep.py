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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from kl_rl.config import HParams, TrainConfig, hparam_problem
from kl_rl.loop import Layout, LoopResult, train_runs
from kl_rl.run_folder import check_resumable, claim, prepare_run_dir, read_record, write_json_atomic
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
        problems = [hparam_problem(name, v, f"--grid {name}") for v in grid[name]]
        if any(problems):
            raise ValueError(next(p for p in problems if p))
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


def padded(runs: list[Any], num_devices: int) -> list[Any]:
    """Runs (or their seeds) padded with copies of the last one to a multiple of ``num_devices``."""
    return runs + [runs[-1]] * ((-len(runs)) % num_devices)


@dataclass
class SweepResult(LoopResult):
    """``train_runs``' result with the sweep's runs (``state`` keeps the padded run axis)."""

    runs: list[SweepRun] = field(default_factory=list)


class SweepPrograms:
    """The vmapped, jitted and sharded programs of one static configuration (``loop.Programs``
    over a run axis, padded to a multiple of the device count)."""

    def __init__(self, cfg: TrainConfig, devices: Sequence[jax.Device] | None = None):
        self.trainer = Trainer(cfg)
        self.devices = list(devices if devices is not None else jax.devices())
        mesh = Mesh(np.asarray(self.devices), ("runs",))
        self.sharding = NamedSharding(mesh, PartitionSpec("runs"))
        t = self.trainer
        # the keys are made from the seeds inside the program: a host array of seeds is placed on
        # every host alike (typed key arrays cannot be assembled across processes)
        init_from_seed = lambda seed, *rest: t.init(jax.random.key(seed), *rest)  # noqa: E731
        self._init = jax.jit(jax.vmap(init_from_seed, in_axes=(0, 0, None, None)), out_shardings=self.sharding)
        self._pretrain = jax.jit(jax.vmap(t.pretrain, in_axes=(0, 0, None, None)), out_shardings=self.sharding)
        self._epoch = jax.jit(jax.vmap(t.epoch), out_shardings=self.sharding, donate_argnums=0)
        self._evaluate = jax.jit(jax.vmap(t.evaluate), out_shardings=self.sharding)

    def init(self, seeds: Sequence[int], hparams: HParams, prior: Any, demos: Any = None) -> Any:
        seeds_arr = np.asarray(padded(list(seeds), len(self.devices)), np.int32)  # [R]
        return self._init(self.place(seeds_arr), hparams, prior, demos)

    def pretrain(self, state: Any, hparams: HParams, obs: Any, actions: Any) -> tuple[Any, Any]:
        return self._pretrain(state, hparams, jnp.asarray(obs), jnp.asarray(actions))

    def compile(self, state: Any, hparams: HParams) -> None:
        self._compiled = (self._epoch.lower(state, hparams).compile(), self._evaluate.lower(state).compile())

    def epoch(self, state: Any, hparams: HParams) -> tuple[Any, dict[str, Any]]:
        return self._compiled[0](state, hparams)

    def evaluate(self, state: Any) -> dict[str, Any]:
        return self._compiled[1](state)

    def place(self, tree: Any) -> Any:
        """Puts arrays with a leading run axis on the devices, split along that axis. Across
        several processes (multi-host) each builds its own shards from the same host arrays."""
        if jax.process_count() == 1:
            return jax.device_put(tree, self.sharding)

        def one(x: Any) -> jax.Array:
            host = np.asarray(jax.device_get(x))
            return jax.make_array_from_callback(host.shape, self.sharding, lambda index: host[index])

        return jax.tree.map(one, tree)

    def fetch(self, tree: Any) -> Any:
        """Host copy of run-axis arrays; across several processes (multi-host), gathered from all."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            return multihost_utils.process_allgather(tree, tiled=True)
        return jax.device_get(tree)

    def per_run(self, tree: Any, count: int) -> list[Any]:
        return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(count)]


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
              keep_checkpoints: int = 3, resume: bool = False, extra: dict[str, Any] | None = None) -> SweepResult:
    """Trains every run of ``runs`` together (``loop.train_runs`` over a run axis). With
    ``sweep_dir`` writes one run folder per run, ``<sweep_dir>/<run.name>/`` (the files of
    ``kl-rl train``, TensorBoard aside), and in ``sweep_dir`` ``sweep.json``, the prior and the
    orbax checkpoints of the whole vmapped state (single-host only). ``resume`` continues
    ``sweep_dir`` from its latest checkpoint."""
    cfg = cfg.validate()  # the env's preset filled in before it is recorded
    programs = programs or SweepPrograms(cfg, devices)
    padded_runs = padded(runs, len(programs.devices))
    writes = sweep_dir is not None and jax.process_index() == 0  # one writer when several hosts run the sweep
    record = sweep_record(cfg, base, runs, eval_every)
    run_dirs = [Path(sweep_dir) / run.name for run in runs] if sweep_dir is not None else []
    if resume:
        check_resumable(Path(sweep_dir) / "sweep.json", record, "sweep", "start a new sweep")
        extra = {k: v for k, v in read_record(Path(sweep_dir) / "sweep.json", "sweep").items() if k not in record}
        if writes:
            claim(Path(sweep_dir))
    elif writes:
        for run, run_dir in zip(runs, run_dirs, strict=True):
            prepare_run_dir(run_dir, overwrite)
            hp = {name: float(getattr(base, name)) for name in HPARAM_NAMES} | dict(run.overrides)
            write_json_atomic(run_dir / "config.json", {"config": dataclasses.asdict(cfg), "hparams": hp,
                                                        "seed": run.seed, "eval_every": eval_every,
                                                        "sweep": str(sweep_dir)})
        prepare_run_dir(Path(sweep_dir), overwrite)  # clears old checkpoints / prior of the sweep itself
        write_json_atomic(Path(sweep_dir) / "sweep.json", {**record, **(extra or {})})
        if prior is not None:
            from kl_rl import priors

            priors.save(prior, Path(sweep_dir) / "prior")
    layout = Layout(Path(sweep_dir), run_dirs) if sweep_dir is not None else None
    out = train_runs(programs, cfg, stacked_hparams(base, padded_runs), [r.seed for r in runs],
                     [r.name for r in runs], layout, eval_every=eval_every, prior=prior, demos=demos, resume=resume,
                     progress=progress, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                     summaries=[{"overrides": dict(r.overrides)} for r in runs],
                     description=f"{cfg.env} sweep ({len(runs)} runs)",
                     demo_return=(extra or {}).get("demos", {}).get("mean_return"))
    return SweepResult(**vars(out), runs=runs)


@dataclass
class LabelResult:
    """One static choice of ``sweep_labels``: its folder, config, runs and results."""

    label: str
    cfg: TrainConfig
    sweep_dir: Path
    result: SweepResult
    demo_return: float | None


def label_config(base: TrainConfig, label: str) -> TrainConfig:
    """``algo[:prior][@name=value,...]`` applied to ``base``, validated (one-line ValueError):
    e.g. ``kl:mlp``, or ``nppac@critic_recipe=rlpd,utd=2`` for N-PPAC with RLPD's critics at UTD 2."""
    from kl_rl.config import parse_overrides

    head, _, settings = label.partition("@")
    algo, _, prior = head.partition(":")
    overrides = parse_overrides(settings.split(","), flag=f"label {label}:") if settings else {}
    return dataclasses.replace(base, algo=algo, prior=prior or "gp", **overrides).validate()


def label_folder(label: str) -> str:
    """A label as a folder name: ``kl:mlp`` -> ``kl-mlp``, ``nppac@utd=2,num_critics=10`` ->
    ``nppac+utd=2+num_critics=10``."""
    return label.replace(":", "-").replace("@", "+").replace(",", "+")


def label_from_folder(folder: str) -> str:
    """The label ``label_folder`` turned into ``folder`` (``kl-mlp`` -> ``kl:mlp``, ``bc-sac`` stays,
    ``rlpd+num_critics=2+utd=1`` -> ``rlpd@num_critics=2,utd=1``, ``nppac+`` stays): the algo is
    the longest registered name the folder starts with, so an algo's own dash or plus is not read
    as a prior or a setting."""
    from kl_rl.config import ALGOS

    algo = max((a for a in ALGOS if folder == a or folder.startswith((f"{a}-", f"{a}+"))), key=len, default=None)
    if algo is None:
        raise ValueError(f"{folder!r} is not a label's folder (it starts with none of {', '.join(ALGOS)})")
    rest = folder[len(algo):]  # "", "-prior", "-prior+settings" or "+settings"
    prior, _, settings = rest[1:].partition("+") if rest.startswith("-") else ("", "", rest[1:])
    return algo + (f":{prior}" if prior else "") + (f"@{settings.replace('+', ',')}" if settings else "")


def sweep_labels(base: TrainConfig, labels: Sequence[str], runs: list[SweepRun], root: Path, *,
                 hparams: Any = None, source: Any = None, eval_every: int = 5_000, overwrite: bool = False,
                 progress: bool = True, checkpoint_every: int = 10, keep_checkpoints: int = 3) -> list[LabelResult]:
    """What ``kl-rl sweep`` runs: every static choice (``algo[:prior]``) as its own program, one
    after the other, each over the same ``runs``, into ``root`` (or ``root/<label>`` when there
    are several), each with summary.csv / summary.md / curves.png. ``hparams``: a
    ``config.HParamOptions`` for the values the grid does not set; ``source``: a
    ``prior_source.Source`` (None: the shipped demonstrations, default prior options). Every label is checked before
    anything is fitted or trains."""
    from kl_rl.config import HParamOptions
    from kl_rl.prior_source import demos_and_prior
    from kl_rl.sweep_summary import write_sweep_summary

    configs = [(label, label_config(base, label)) for label in labels]
    out = []
    for label, cfg in configs:
        prior, demo_arrays, extra, demo_return = demos_and_prior(cfg, source, 0)
        sweep_dir = root / label_folder(label) if len(configs) > 1 else root
        base = (hparams or HParamOptions()).hparams(cfg.env, cfg.algo)
        result = run_sweep(cfg, base, runs, sweep_dir, eval_every=eval_every, progress=progress, prior=prior,
                           demos=demo_arrays, overwrite=overwrite, checkpoint_every=checkpoint_every,
                           keep_checkpoints=keep_checkpoints, extra=extra)
        if jax.process_index() == 0:  # one writer when several hosts run the sweep
            write_sweep_summary(sweep_dir, label, cfg, runs, result.rows)
        out.append(LabelResult(label, cfg, sweep_dir, result, demo_return))
    return out


def resume_sweeps(folder: Path, progress: bool = True, checkpoint_every: int = 10,
                  keep_checkpoints: int = 3) -> list[LabelResult]:
    """Continues every sweep folder at or under ``folder`` (one per static choice) from its
    latest checkpoint, with its saved sweep.json."""
    from kl_rl import priors
    from kl_rl.config import HParams, config_from_json
    from kl_rl.run_folder import read_record
    from kl_rl.sweep_summary import write_sweep_summary

    folders = [folder] if (folder / "sweep.json").exists() else sorted(p.parent for p in folder.glob("*/sweep.json"))
    out = []
    for one in folders or [folder]:  # none: read_record names the missing sweep.json
        record = read_record(one / "sweep.json", "sweep")
        cfg = config_from_json(record["config"]).validate()
        runs = runs_from_record(record)
        prior = priors.load(one / "prior") if cfg.uses_prior else None
        result = run_sweep(cfg, HParams.create(**record["hparams"]), runs, one, eval_every=record["eval_every"],
                           progress=progress, prior=prior, checkpoint_every=checkpoint_every,
                           keep_checkpoints=keep_checkpoints, resume=True)
        write_sweep_summary(one, cfg.algo, cfg, runs, result.rows)
        out.append(LabelResult(cfg.algo, cfg, one, result, None))
    return out
