"""The host loop shared by everything that trains: compile, run epochs, evaluate, log, save.

The device does all the work inside the jitted ``epoch``; the host only times it, shows
progress, writes metrics and decides when to stop.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
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

RESULT_FILES = ("metrics.jsonl", "params.msgpack", "curve.png", "summary.json", "checkpoints", "prior")


class RunDirExistsError(FileExistsError):
    """The run directory already holds results that a new run would overwrite."""


class NonFiniteError(ValueError):
    """A loss, gradient or diagnostic became NaN or infinite; the run stopped."""


# Update metrics that must stay finite once updates have started (NaN before them is normal).
FINITE_METRICS = ("critic_loss", "actor_loss", "actor_grad_norm", "critic_grad_norm", "q_mean", "kl_mean", "kl_max")


def check_finite(metrics: dict[str, Any], epoch: int, run: str | None = None) -> None:
    """Raises NonFiniteError naming the run (in a sweep), the epoch and the first non-finite
    quantity among an epoch's raw metrics (arrays, before NaN becomes null in the JSON log)."""
    if not int(metrics.get("grad_steps", 0)):
        return
    for name in FINITE_METRICS:
        value = metrics.get(name)
        if value is not None and not np.isfinite(value):
            where = f"run {run}, " if run else ""
            raise NonFiniteError(f"{where}epoch {epoch}: {name} is {value}; training stopped (the metrics up to "
                                 "this epoch are kept). Lower the learning rates or raise the prior's std floor")


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
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
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


@dataclass(frozen=True)
class ResumeHelp:
    """What the caller's user does to continue a stopped run, and when resuming it with changed
    settings is refused. The defaults speak of kl-rl train's options."""

    continue_with: str | None = None  # None: "--resume <run_dir>"
    if_changed: str = "pass the run's own options (see its config.json) or start a new run"


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
    checkpoint_every: int = 10,
    keep_checkpoints: int = 3,
    resume: bool = False,
    resume_help: ResumeHelp = ResumeHelp(),
) -> RunResult:
    """Trains one run for ``cfg.total_steps`` transitions; evaluates every ``eval_every`` steps
    and at the end. With ``run_dir``, writes metrics.jsonl, tb/, curve.png, params.msgpack and
    summary.json there, and an orbax checkpoint of the whole state after pretraining, every
    ``checkpoint_every`` epochs (0: only those and the last) and at the end, keeping
    ``keep_checkpoints``. Ctrl-C (SIGINT) finishes the current epoch, checkpoints it and raises
    KeyboardInterrupt.

    ``resume``: continue ``run_dir`` from its latest checkpoint (same config required); the
    metrics file continues with no epoch duplicated or missing, and its ``wall_seconds`` count
    the training time of every part. ``resume_help`` words the Ctrl-C message and the refusal of
    changed settings for the caller's command line.
    ``prior``: the behavioral prior pytree of nppac / kl. ``demos``: (observations [N, o],
    actions [N, a]) for pretraining (nppac, kl, bc-sac; skipped when pretrain_epochs is 0).
    ``extra_config`` is recorded in config.json (where the prior and demos came from)."""
    from kl_rl import checkpoint

    if cfg.uses_prior and prior is None:
        raise ValueError(f"algo {cfg.algo} needs a behavioral prior")
    if cfg.uses_demos and cfg.pretrain_epochs and demos is None and not resume:
        raise ValueError(f"algo {cfg.algo} pretrains on demonstrations: pass demos or set pretrain_epochs 0")
    record = {"config": dataclasses.asdict(cfg), "hparams": to_python_tree(hparams), "seed": seed,
              "eval_every": eval_every}
    if resume:
        if run_dir is None:
            raise ValueError("resuming needs the run directory")
        run_dir = Path(run_dir)
        check_same_config(run_dir, record, resume_help.if_changed)
    elif run_dir is not None:
        run_dir = prepare_run_dir(Path(run_dir), overwrite)
        write_json_atomic(run_dir / "config.json", {**record, **(extra_config or {})})
        if prior is not None:  # the run's own copy, so --resume needs neither demos nor a refit
            from kl_rl import priors

            priors.save(prior, run_dir / "prior")
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    state = jax.jit(trainer.init)(jax.random.key(seed), hparams, prior)
    pretrain_losses, t_pretrain = None, time.perf_counter()
    if resume:
        state, loop = checkpoint.restore(run_dir, state)
        rows = truncate_metrics(run_dir / "metrics.jsonl", loop["epoch"])
    elif cfg.pretrains:  # its time includes compiling it
        state, pretrain_losses = jax.jit(trainer.pretrain)(state, hparams, *map(jax.numpy.asarray, demos))
        pretrain_losses = np.asarray(pretrain_losses)
    pretrain_seconds = time.perf_counter() - t_pretrain
    epoch = jax.jit(trainer.epoch, donate_argnums=0).lower(state, hparams).compile()
    evaluate = jax.jit(trainer.evaluate).lower(state).compile()
    result = RunResult(state=state, compile_seconds=time.perf_counter() - t0 - pretrain_seconds)
    result.pretrain_seconds = pretrain_seconds
    result.pretrain_losses = pretrain_losses
    ckpt = checkpoint.manager(run_dir, keep_checkpoints) if run_dir is not None else None
    continue_with = resume_help.continue_with or f"--resume {run_dir}"

    purge = rows[-1]["env_steps"] + 1 if resume and rows else None  # drop TensorBoard events past the checkpoint
    writer = MetricsWriter(run_dir, tensorboard, purge_step=purge) if run_dir is not None else None
    interrupted = SigintFlag()
    t_train = time.perf_counter()
    wall_before = rows[-1]["wall_seconds"] if resume and rows else 0.0  # training time of earlier parts
    try:
        if resume:
            result.rows = rows
            start, next_eval = loop["epoch"], loop["next_eval"]
            evals = [r for r in rows if r.get("eval_return") is not None]
            last_return = f"{evals[-1]['eval_return']:.1f}" if evals else "-"
        else:
            # The untrained (or pretrained) policy's evaluation anchors the learning curve at step 0.
            row = {"epoch": 0, "env_steps": 0, "grad_steps": 0, "wall_seconds": 0.0,
                   **{k: to_python(v) for k, v in jax.device_get(evaluate(state)).items()}}
            if pretrain_losses is not None and len(pretrain_losses):
                row.update(pretrain_loss_first=float(pretrain_losses[0]),
                           pretrain_loss_last=float(pretrain_losses[-1]), pretrain_seconds=pretrain_seconds)
            result.rows.append(row)
            start, next_eval = 0, eval_every
            last_return = f"{row['eval_return']:.1f}"
            if writer is not None:
                writer.write(row, step=0)
                checkpoint.save(ckpt, 0, state, {"epoch": 0, "next_eval": next_eval})
        with _progress(progress) as bar, interrupted:
            total = cfg.num_epochs * cfg.env_steps_per_epoch
            task = bar.add_task(cfg.env, total=total, sps=0.0, ret=last_return,
                                completed=start * cfg.env_steps_per_epoch)
            for index in range(start, cfg.num_epochs):
                t = time.perf_counter()
                state, metrics = epoch(state, hparams)
                metrics = jax.device_get(metrics)
                seconds = time.perf_counter() - t
                row = {"epoch": index + 1, **{k: to_python(v) for k, v in metrics.items()},
                       "epoch_seconds": seconds, "env_steps_per_s": cfg.env_steps_per_epoch / seconds,
                       "wall_seconds": wall_before + time.perf_counter() - t_train}
                last_epoch = index + 1 == cfg.num_epochs
                try:
                    check_finite(metrics, index + 1)
                    fault = None
                except NonFiniteError as err:
                    fault = err  # logged below, then raised; the last good checkpoint stays
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
                due = checkpoint_every and (index + 1) % checkpoint_every == 0
                if ckpt is not None and (due or last_epoch or interrupted.raised):
                    checkpoint.save(ckpt, index + 1, state, {"epoch": index + 1, "next_eval": next_eval})
                if interrupted.raised:
                    raise KeyboardInterrupt(f"interrupted after epoch {index + 1}"
                                            + (f"; checkpoint saved, continue with {continue_with}"
                                               if ckpt is not None else ""))
                bar.update(task, completed=row["env_steps"], sps=row["env_steps_per_s"], ret=last_return)
                if progress and not bar.console.is_terminal and "eval_return" in row:
                    # No live bar in logs and pipes: one plain line per evaluation instead.
                    bar.console.print(f"{cfg.env}: {row['env_steps']}/{total} env steps, "
                                      f"{row['env_steps_per_s']:.0f} steps/s, eval return {last_return}")
    finally:
        if writer is not None:
            writer.close()
        if ckpt is not None:
            ckpt.close()
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
                   "train_seconds_total": final["wall_seconds"], "resumed": resume, **result.final_eval}
        write_json_atomic(run_dir / "summary.json", summary)
    return result


class SigintFlag:
    """While active, Ctrl-C sets ``raised`` instead of interrupting, so the loop can finish the
    epoch, checkpoint it and stop cleanly (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: Any = None

    def __enter__(self) -> SigintFlag:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class ConfigChangedError(ValueError):
    """``--resume`` with settings that differ from the run's own."""


def check_same_config(run_dir: Path, record: dict[str, Any], if_changed: str = ResumeHelp.if_changed) -> None:
    """Resuming must continue the same program: config, hparams and seed as in config.json."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ConfigChangedError(f"{run_dir} is not a kl-rl run folder (no config.json); check the --resume path")
    saved = json.loads(path.read_text())
    current = json.loads(json.dumps(record))
    # A folder written before a setting existed ran with that setting's default (or, for the
    # head-start settings, with the recipe of its time: config_from_json fills those in).
    from kl_rl.config import config_from_json

    defaults = json.loads(json.dumps({"config": dataclasses.asdict(config_from_json(saved.get("config", {}))),
                                      "hparams": to_python_tree(HParams.create())}))
    changed = [f"{section}.{k}" for section in ("config", "hparams") for k in current[section]
               if saved.get(section, {}).get(k, defaults[section].get(k)) != current[section][k]]
    changed += [name for name in ("seed", "eval_every") if saved.get(name) != current[name]]
    if changed:
        raise ConfigChangedError(f"cannot resume {run_dir} with a changed config ({', '.join(changed)}); {if_changed}")


def truncate_metrics(path: Path, epoch: int) -> list[dict[str, Any]]:
    """Keeps the rows of epochs <= ``epoch`` (those the checkpoint covers), rewritten atomically."""
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by the kill: the checkpoint predates it
            continue
    rows = [r for r in rows if r["epoch"] <= epoch]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)
    return rows


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)


def to_python_tree(tree: Any) -> Any:
    """A pytree of arrays (e.g. HParams) as a dict of Python numbers, for JSON."""
    if dataclasses.is_dataclass(tree):
        return {f.name: to_python_tree(getattr(tree, f.name)) for f in dataclasses.fields(tree)}
    return to_python(np.asarray(tree))
