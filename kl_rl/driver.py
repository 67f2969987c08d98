"""The host loop shared by everything that trains: compile, run epochs, evaluate, log, save.

The device does all the work inside the jitted ``epoch``; the host only times it, shows
progress, writes metrics and decides when to stop.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from kl_rl.config import HParams, TrainConfig
from kl_rl.metrics_log import MetricsWriter, to_python
from kl_rl.plots import learning_curve
from kl_rl.train import Trainer, TrainState

RESULT_FILES = ("metrics.jsonl", "params.msgpack", "curve.png", "summary.json")


class RunDirExistsError(FileExistsError):
    """The run directory already holds results that a new run would overwrite."""


class NonFiniteError(ValueError):
    """A loss, gradient or diagnostic became NaN or infinite; the run stopped."""


# Update metrics that must stay finite once updates have started (NaN before them is normal).
FINITE_METRICS = ("critic_loss", "actor_loss", "actor_grad_norm", "critic_grad_norm", "q_mean", "kl_mean", "kl_max")


def check_finite(metrics: dict[str, Any], epoch: int) -> None:
    """Raises NonFiniteError naming the epoch and the first non-finite quantity among an
    epoch's raw metrics (arrays, before NaN becomes null in the JSON log)."""
    if not int(metrics.get("grad_steps", 0)):
        return
    for name in FINITE_METRICS:
        value = metrics.get(name)
        if value is not None and not np.isfinite(value):
            raise NonFiniteError(f"epoch {epoch}: {name} is {value}; training stopped (the metrics up to this "
                                 "epoch are kept). Lower the learning rates or raise the prior's std floor")


@dataclass
class RunResult:
    state: TrainState
    rows: list[dict[str, Any]] = field(default_factory=list)
    final_eval: dict[str, Any] = field(default_factory=dict)
    compile_seconds: float = 0.0
    train_seconds: float = 0.0
    pretrain_seconds: float = 0.0
    pretrain_losses: np.ndarray | None = None  # [pretrain_epochs] mean loss of each pass


def prepare_run_dir(run_dir: Path, overwrite: bool) -> Path:
    """Creates ``run_dir``; refuses to reuse one with results unless ``overwrite``."""
    run_dir = Path(run_dir)
    existing = [name for name in RESULT_FILES if (run_dir / name).exists()]
    if existing and not overwrite:
        raise RunDirExistsError(
            f"run directory {run_dir} already has results ({', '.join(existing)}); "
            "pass a new --run-name or --overwrite"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in existing:
        (run_dir / name).unlink()
    for tb_file in (run_dir / "tb").glob("events.*") if existing else ():
        tb_file.unlink()
    return run_dir


def save_params(state: TrainState, path: Path) -> Path:
    """Writes the actor and critic parameters (flax msgpack), atomically."""
    params = {"actor": state.agent.actor_params, "critics": state.agent.critic_params}
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(serialization.to_bytes(jax.device_get(params)))
    tmp.replace(path)
    return path


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("env steps"),
        TextColumn("{task.fields[sps]:>7.0f} steps/s"),
        TextColumn("return {task.fields[ret]}"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def run(
    cfg: TrainConfig,
    hparams: HParams,
    seed: int,
    run_dir: Path | None = None,
    eval_every: int = 5_000,
    progress: bool = True,
    overwrite: bool = False,
    tensorboard: bool = True,
    prior: Any = None,
    demos: tuple[np.ndarray, np.ndarray] | None = None,
    extra_config: dict[str, Any] | None = None,
) -> RunResult:
    """Trains one run for ``cfg.total_steps`` transitions; evaluates every ``eval_every`` steps
    and at the end. With ``run_dir``, writes metrics.jsonl, tb/, curve.png, params.msgpack and
    summary.json there.

    ``prior``: the behavioral prior pytree of nppac / kl. ``demos``: (observations [N, o],
    actions [N, a]) for pretraining (nppac, kl, bc-sac; skipped when pretrain_epochs is 0).
    ``extra_config`` is recorded in config.json (where the prior and demos came from)."""
    if cfg.uses_prior and prior is None:
        raise ValueError(f"algo {cfg.algo} needs a behavioral prior")
    if cfg.uses_demos and cfg.pretrain_epochs and demos is None:
        raise ValueError(f"algo {cfg.algo} pretrains on demonstrations: pass demos or set pretrain_epochs 0")
    if run_dir is not None:
        run_dir = prepare_run_dir(Path(run_dir), overwrite)
        (run_dir / "config.json").write_text(json.dumps(
            {"config": dataclasses.asdict(cfg), "hparams": to_python_tree(hparams), "seed": seed,
             **(extra_config or {})}, indent=2, default=str))
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    state = jax.jit(trainer.init)(jax.random.key(seed), hparams, prior)
    pretrain_losses, t_pretrain = None, time.perf_counter()
    if cfg.uses_demos and cfg.pretrain_epochs:  # its time includes compiling it
        state, pretrain_losses = jax.jit(trainer.pretrain)(state, hparams, *map(jax.numpy.asarray, demos))
        pretrain_losses = np.asarray(pretrain_losses)
    pretrain_seconds = time.perf_counter() - t_pretrain
    epoch = jax.jit(trainer.epoch, donate_argnums=0).lower(state, hparams).compile()
    evaluate = jax.jit(trainer.evaluate).lower(state).compile()
    result = RunResult(state=state, compile_seconds=time.perf_counter() - t0 - pretrain_seconds)
    result.pretrain_seconds = pretrain_seconds
    result.pretrain_losses = pretrain_losses

    writer = MetricsWriter(run_dir, tensorboard) if run_dir is not None else None
    last_return = "-"
    next_eval = eval_every
    t_train = time.perf_counter()
    try:
        # The untrained policy's evaluation anchors the learning curve at step 0.
        row = {"epoch": 0, "env_steps": 0, "grad_steps": 0, "wall_seconds": 0.0,
               **{k: to_python(v) for k, v in jax.device_get(evaluate(state)).items()}}
        if pretrain_losses is not None and len(pretrain_losses):
            row.update(pretrain_loss_first=float(pretrain_losses[0]), pretrain_loss_last=float(pretrain_losses[-1]),
                       pretrain_seconds=pretrain_seconds)
        result.rows.append(row)
        if writer is not None:
            writer.write(row, step=0)
        with _progress(progress) as bar:
            total = cfg.num_epochs * cfg.env_steps_per_epoch
            task = bar.add_task(cfg.env, total=total, sps=0.0, ret=last_return)
            for index in range(cfg.num_epochs):
                t = time.perf_counter()
                state, metrics = epoch(state, hparams)
                metrics = jax.device_get(metrics)
                seconds = time.perf_counter() - t
                row = {"epoch": index + 1, **{k: to_python(v) for k, v in metrics.items()},
                       "epoch_seconds": seconds, "env_steps_per_s": cfg.env_steps_per_epoch / seconds,
                       "wall_seconds": time.perf_counter() - t_train}
                last_epoch = index + 1 == cfg.num_epochs
                try:
                    check_finite(metrics, index + 1)
                    fault = None
                except NonFiniteError as err:
                    fault = err  # logged below, then raised
                if fault is None and (row["env_steps"] >= next_eval or last_epoch):
                    next_eval += eval_every
                    ev = jax.device_get(evaluate(state))
                    row.update({k: to_python(v) for k, v in ev.items()})
                    last_return = f"{row['eval_return']:.1f}"
                if writer is not None:
                    writer.write(row, step=row["env_steps"])
                result.rows.append(row)
                if fault is not None:
                    raise fault
                bar.update(task, completed=row["env_steps"], sps=row["env_steps_per_s"], ret=last_return)
                if progress and not bar.console.is_terminal and "eval_return" in row:
                    # No live bar in logs and pipes: one plain line per evaluation instead.
                    bar.console.print(f"{cfg.env}: {row['env_steps']}/{total} env steps, "
                                      f"{row['env_steps_per_s']:.0f} steps/s, eval return {last_return}")
    finally:
        if writer is not None:
            writer.close()
    result.state = state
    result.train_seconds = time.perf_counter() - t_train
    final = result.rows[-1]
    result.final_eval = {k: final[k] for k in final if k.startswith("eval_")}
    if run_dir is not None:
        learning_curve(result.rows, run_dir / "curve.png", title=f"{cfg.env} · {cfg.algo} · seed {seed}")
        save_params(state, run_dir / "params.msgpack")
        summary = {"env": cfg.env, "algo": cfg.algo, "seed": seed, "env_steps": final["env_steps"],
                   "grad_steps": final["grad_steps"], "compile_seconds": result.compile_seconds,
                   "pretrain_seconds": result.pretrain_seconds, "train_seconds": result.train_seconds,
                   **result.final_eval}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return result


def to_python_tree(tree: Any) -> Any:
    """A pytree of arrays (e.g. HParams) as a dict of Python numbers, for JSON."""
    if dataclasses.is_dataclass(tree):
        return {f.name: to_python_tree(getattr(tree, f.name)) for f in dataclasses.fields(tree)}
    return to_python(np.asarray(tree))
