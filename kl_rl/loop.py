"""The one host loop of every training (``kl-rl train``, ``sweep``, ``demos``' expert):
R runs advanced together by one compiled program; a single run is R = 1.

The device does all the work inside the jitted ``epoch``; the host times it, evaluates on a
schedule, writes each run's metrics, checkpoints, stops on a non-finite metric or Ctrl-C, and
writes each run's final files. ``run`` (one run) and ``kl_rl.sweep.run_sweep`` (a run axis)
prepare the folders and the programs and call ``train_runs``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from kl_rl import buffer as replay
from kl_rl import checkpoint
from kl_rl.buffer import Transition
from kl_rl.config import HParams, TrainConfig
from kl_rl.plots import learning_curve
from kl_rl.run_folder import (
    DiskFullError,
    MetricsWriter,
    check_resumable,
    claim,
    is_disk_full,
    prepare_run_dir,
    read_record,
    release,
    run_record,
    save_params,
    to_python,
    truncate_metrics,
    write_json_atomic,
)
from kl_rl.sweep_summary import episode_statistics
from kl_rl.train import Trainer, TrainState


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


class SingleRun:
    """R = 1 without a run axis: ``Trainer``'s functions jitted as they are (the programs of
    ``kl-rl train``; ``benchmarks/single_vs_vmap.py`` measures them against a vmap of one).
    ``train_runs`` takes any object with these methods; ``kl_rl.sweep.SweepPrograms`` is the
    one over a run axis."""

    def __init__(self, cfg: TrainConfig):
        self.trainer = Trainer(cfg)

    def init(self, seeds: Sequence[int], hparams: HParams, prior: Any, demos: Any = None) -> TrainState:
        return jax.jit(self.trainer.init)(jax.random.key(seeds[0]), hparams, prior, demos)

    def pretrain(self, state: TrainState, hparams: HParams, obs: Any, actions: Any) -> tuple[TrainState, Any]:
        return jax.jit(self.trainer.pretrain)(state, hparams, *map(jax.numpy.asarray, (obs, actions)))

    def compile(self, state: TrainState, hparams: HParams) -> None:
        self._epoch = jax.jit(self.trainer.epoch, donate_argnums=0).lower(state, hparams).compile()
        self._evaluate = jax.jit(self.trainer.evaluate).lower(state).compile()

    def epoch(self, state: TrainState, hparams: HParams) -> tuple[TrainState, dict[str, Any]]:
        return self._epoch(state, hparams)

    def evaluate(self, state: TrainState) -> dict[str, Any]:
        return self._evaluate(state)

    def place(self, tree: Any) -> Any:
        return tree

    def fetch(self, tree: Any) -> Any:
        return jax.device_get(tree)

    def per_run(self, tree: Any, count: int) -> list[Any]:
        return [tree]


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


@dataclass(frozen=True)
class ResumeHelp:
    """What the caller's user does to continue a stopped run, and when resuming it with changed
    settings is refused. The defaults speak of kl-rl train's options."""

    continue_with: str | None = None  # None: "--resume <state folder>"
    if_changed: str = "pass the run's own options (see its config.json) or start a new run"


@dataclass
class Layout:
    """Where a training writes: ``state_dir`` holds the checkpoints; each real run has its own
    folder. A single run's state folder is its run folder."""

    state_dir: Path
    run_dirs: list[Path]


@dataclass
class LoopResult:
    state: Any  # final TrainState (with the run axis of the programs, padding included)
    rows: list[list[dict[str, Any]]]  # per real run, per epoch (step 0 first)
    compile_seconds: float = 0.0
    pretrain_seconds: float = 0.0
    train_seconds: float = 0.0
    pretrain_losses: np.ndarray | None = None  # [R?, pretrain_epochs] mean loss of each pass
    final_evals: list[dict[str, Any]] | None = None  # per real run: the final evaluation (final_evaluation)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("env steps"),
        TextColumn("{task.fields[sps]:>7.0f} steps/s"), TextColumn("return {task.fields[ret]}"),
        TimeRemainingColumn(), disable=not enabled,
    )


def train_runs(programs: Any, cfg: TrainConfig, hparams: HParams, seeds: Sequence[int], names: Sequence[str],
               layout: Layout | None, *, eval_every: int, prior: Any = None,
               demos: tuple[np.ndarray, np.ndarray] | None = None, resume: bool = False, progress: bool = True,
               tensorboard: bool = False, checkpoint_every: int = 10, keep_checkpoints: int = 3,
               resume_help: ResumeHelp = ResumeHelp(), summaries: Sequence[dict[str, Any]] | None = None,
               description: str | None = None, demo_return: float | None = None) -> LoopResult:
    """Trains ``len(seeds)`` runs (``names`` label them in errors; with padding the programs may
    hold more) for ``cfg.total_steps`` transitions each; evaluates every ``eval_every`` steps and
    at the end. With ``layout`` writes each run's metrics.jsonl (and tb/ with ``tensorboard``),
    curve.png, params.msgpack and summary.json (``summaries[i]`` adds fields to run i's), and an
    orbax checkpoint of the whole state after pretraining, every ``checkpoint_every`` epochs
    (0: only those and the last), at the end and on Ctrl-C (SIGINT: finish the epoch, checkpoint,
    raise KeyboardInterrupt). ``resume`` continues from the latest checkpoint; each metrics file
    continues with no epoch duplicated or missing. Only process 0 writes (multi-host).
    ``demo_return``: the demonstrations' mean return, a dashed line on each curve.png."""
    try:
        return _train_runs(programs, cfg, hparams, seeds, names, layout, eval_every=eval_every, prior=prior,
                           demos=demos, resume=resume, progress=progress, tensorboard=tensorboard,
                           checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                           resume_help=resume_help, summaries=summaries, description=description,
                           demo_return=demo_return)
    except Exception as err:
        if layout is None or not is_disk_full(err):
            raise
        last = checkpoint.latest_epoch(layout.state_dir)
        resume_with = resume_help.continue_with or f"--resume {layout.state_dir}"
        raise DiskFullError(f"the disk filled up while {layout.state_dir} was written "
                            f"({err.__class__.__name__}: {' '.join(str(err).split())[:200]}); the files written "
                            f"before are intact: free some space, then continue with {resume_with}"
                            + (f" (from checkpoint {last})" if last is not None else "")) from None
    finally:  # the folders claimed by prepare_run_dir / a resume are free again
        for folder in [layout.state_dir, *layout.run_dirs] if layout is not None else []:
            release(folder)


def _train_runs(programs: Any, cfg: TrainConfig, hparams: HParams, seeds: Sequence[int], names: Sequence[str],
                layout: Layout | None, *, eval_every: int, prior: Any, demos: Any, resume: bool, progress: bool,
                tensorboard: bool, checkpoint_every: int, keep_checkpoints: int, resume_help: ResumeHelp,
                summaries: Sequence[dict[str, Any]] | None, description: str | None,
                demo_return: float | None) -> LoopResult:
    """``train_runs`` with its folders claimed."""
    n = len(seeds)
    hparams = programs.place(hparams)
    t0 = time.perf_counter()
    state = programs.init(seeds, hparams, prior,
                          demo_transitions(cfg, demos, programs.trainer.env, layout if resume else None))
    pretrain_losses, t_pretrain = None, time.perf_counter()
    checkpoints = layout is not None and jax.process_count() == 1
    run_dirs = layout.run_dirs if layout is not None and jax.process_index() == 0 else []
    if resume:
        if not checkpoints:
            raise checkpoint.CheckpointError("resuming needs the run's folder and a single host")
        state, loop = checkpoint.restore(layout.state_dir, state)  # may move a damaged latest one aside
        state = programs.place(state)
        rows = [truncate_metrics(d / "metrics.jsonl", loop["epoch"]) for d in run_dirs]
    elif cfg.pretrains:  # its time includes compiling it
        state, pretrain_losses = programs.pretrain(state, hparams, demos[0], demos[1])
        pretrain_losses = np.asarray(programs.fetch(pretrain_losses))
    pretrain_seconds = time.perf_counter() - t_pretrain
    ckpt = checkpoint.manager(layout.state_dir, keep_checkpoints) if checkpoints else None
    programs.compile(state, hparams)
    result = LoopResult(state=state, rows=[[] for _ in range(n)], pretrain_seconds=pretrain_seconds,
                        compile_seconds=time.perf_counter() - t0 - pretrain_seconds, pretrain_losses=pretrain_losses)
    continue_with = resume_help.continue_with or (f"--resume {layout.state_dir}" if layout is not None else "")
    purge = rows[0][-1]["env_steps"] + 1 if resume and rows and rows[0] else None  # TensorBoard past the checkpoint
    writers = [MetricsWriter(d, tensorboard, purge_step=purge) for d in run_dirs]
    interrupted = SigintFlag()
    t_train = time.perf_counter()
    wall_before = rows[0][-1]["wall_seconds"] if resume and rows and rows[0] else 0.0  # earlier parts' time

    def record(rows_now: list[dict[str, Any]]) -> None:
        for i, row in enumerate(rows_now):
            result.rows[i].append(row)
            if writers:
                writers[i].write(row, step=row["env_steps"])

    def evaluation() -> list[dict[str, Any]]:
        ev = programs.per_run(programs.fetch(programs.evaluate(state)), n)
        return [{k: to_python(v) for k, v in one.items() if k not in PER_EPISODE_ONLY} for one in ev]

    def shown(rows_now: list[dict[str, Any]]) -> str:
        returns = [r["eval_return"] for r in rows_now if r.get("eval_return") is not None]
        successes = [r["eval_success"] for r in rows_now if r.get("eval_success") is not None]
        return (f"{np.mean(returns):.1f}" if returns else "-") + (f", success {np.mean(successes):.0%}"
                                                                  if successes else "")

    try:
        if resume:
            result.rows = rows if rows else result.rows
            start, next_eval = loop["epoch"], loop["next_eval"]
            evaluated = [[r for r in run if r.get("eval_return") is not None] for run in result.rows]
            last_return = shown([run[-1] for run in evaluated if run])
        else:
            # The untrained (or pretrained) policy's evaluation anchors the learning curve at step 0.
            first = [{"epoch": 0, "env_steps": 0, "grad_steps": 0, "wall_seconds": 0.0, **ev} for ev in evaluation()]
            if pretrain_losses is not None and pretrain_losses.shape[-1]:
                losses = programs.per_run(pretrain_losses, n)
                for row, loss in zip(first, losses, strict=False):
                    row.update(pretrain_loss_first=float(loss[0]), pretrain_loss_last=float(loss[-1]),
                               pretrain_seconds=pretrain_seconds)
            record(first)
            start, next_eval = 0, eval_every
            last_return = shown(first)
            if ckpt is not None:
                checkpoint.save(ckpt, 0, state, {"epoch": 0, "next_eval": next_eval})
        with _progress(progress) as bar, interrupted:
            total = cfg.num_epochs * cfg.env_steps_per_epoch
            task = bar.add_task(description or cfg.env, total=total, sps=0.0, ret=last_return,
                                completed=start * cfg.env_steps_per_epoch)
            for index in range(start, cfg.num_epochs):
                t = time.perf_counter()
                state, metrics = programs.epoch(state, hparams)
                metrics = programs.per_run(programs.fetch(metrics), n)
                seconds = time.perf_counter() - t
                timing = {"epoch_seconds": seconds, "env_steps_per_s": cfg.env_steps_per_epoch / seconds,
                          "wall_seconds": wall_before + time.perf_counter() - t_train}
                rows_now = [{"epoch": index + 1, **{k: to_python(v) for k, v in m.items()}, **timing} for m in metrics]
                last_epoch = index + 1 == cfg.num_epochs
                fault = None
                for i, m in enumerate(metrics):  # one non-finite run stops every run of the program
                    try:
                        check_finite(m, index + 1, names[i] if n > 1 else None)
                    except NonFiniteError as err:
                        fault = fault or err  # logged below, then raised; the last good checkpoint stays
                if fault is None and (rows_now[0]["env_steps"] >= next_eval or last_epoch):
                    next_eval += eval_every
                    for row, ev in zip(rows_now, evaluation(), strict=True):
                        row.update(ev)
                    last_return = shown(rows_now)
                record(rows_now)
                if fault is not None:
                    raise fault
                due = checkpoint_every and (index + 1) % checkpoint_every == 0
                if ckpt is not None and (due or last_epoch or interrupted.raised):
                    checkpoint.save(ckpt, index + 1, state, {"epoch": index + 1, "next_eval": next_eval})
                if interrupted.raised:
                    raise KeyboardInterrupt(f"interrupted after epoch {index + 1}"
                                            + (f"; checkpoint saved, continue with {continue_with}"
                                               if ckpt is not None else ""))
                bar.update(task, completed=rows_now[0]["env_steps"], sps=timing["env_steps_per_s"], ret=last_return)
                if progress and not bar.console.is_terminal and "eval_return" in rows_now[0]:
                    # No live bar in logs and pipes: one plain line per evaluation instead.
                    bar.console.print(f"{description or cfg.env}: {rows_now[0]['env_steps']}/{total} env steps, "
                                      f"{timing['env_steps_per_s']:.0f} steps/s, eval return {last_return}")
    finally:
        for writer in writers:
            writer.close()
        if ckpt is not None:
            ckpt.close()
    result.state = state
    result.train_seconds = time.perf_counter() - t_train
    if layout is not None and cfg.final_eval_episodes:  # every process takes part; process 0 writes
        result.final_evals = final_evaluation(programs, state, cfg, n)
    # fetching gathers from every process (a collective): all take part, process 0 writes
    params = {"actor": state.agent.actor_params, "critics": state.agent.critic_params}
    params = programs.per_run(programs.fetch(params), n) if layout is not None else []
    if run_dirs:
        for i, run_dir in enumerate(run_dirs):
            final = result.rows[i][-1]
            learning_curve(result.rows[i], run_dir / "curve.png", title=f"{cfg.env} · {cfg.algo} · {names[i]}",
                           demo_return=demo_return)
            save_params(params[i], run_dir / "params.msgpack")
            write_json_atomic(run_dir / "summary.json", {
                "env": cfg.env, "algo": cfg.algo, "seed": int(seeds[i]), **(summaries[i] if summaries else {}),
                "env_steps": final["env_steps"], "grad_steps": final["grad_steps"],
                "compile_seconds": result.compile_seconds, "pretrain_seconds": result.pretrain_seconds,
                "train_seconds": result.train_seconds, "train_seconds_total": final["wall_seconds"],
                "resumed": resume, **{k: v for k, v in final.items() if k.startswith("eval_")},
                **({"final_eval": result.final_evals[i]} if result.final_evals else {})})
    return result


# Per-episode outputs of Trainer.evaluate that the final evaluation reads and metrics rows leave out.
PER_EPISODE_ONLY = ("eval_lengths", "eval_successes")
_FINAL_EVAL_SALT = 0x5EA1


@jax.jit
def _folded_keys(keys: jax.Array, index: jax.Array) -> jax.Array:
    """The state's key(s) (one per run where there is a run axis) folded with ``index``: the same
    compiled evaluation then draws other episodes. Jitted on the keys alone, so their sharding
    stays and the state is not copied."""
    fold = lambda k: jax.random.fold_in(k, _FINAL_EVAL_SALT + index)  # noqa: E731
    return jax.vmap(fold)(keys) if keys.ndim else fold(keys)


def final_evaluation(programs: Any, state: TrainState, cfg: TrainConfig, n: int) -> list[dict[str, Any]]:
    """Each run's deterministic policy on ``cfg.final_eval_episodes`` episodes: the compiled
    periodic evaluation (``eval_episodes`` in parallel) repeated with other keys, so nothing new
    is compiled. Per run: the returns, early ends (terminated before the time limit: falls), the
    mean with its standard error and 95% bootstrap CI, the IQM, and the success rate (door)."""
    calls = -(-cfg.final_eval_episodes // cfg.eval_episodes)
    parts = [programs.per_run(programs.fetch(programs.evaluate(state.replace(key=_folded_keys(state.key, i)))), n)
             for i in range(calls)]
    out = []
    for r in range(n):
        joined = {k: np.concatenate([np.atleast_1d(p[r][k]) for p in parts])[: cfg.final_eval_episodes]
                  for k in ("eval_returns", "eval_lengths", "eval_successes") if k in parts[0][r]}
        out.append(episode_statistics(joined["eval_returns"], joined["eval_lengths"] < cfg.episode_length,
                                      joined.get("eval_successes")))
    return out


def demo_transitions(cfg: TrainConfig, demos: Any, env: Any, resuming: Layout | None) -> Transition | None:
    """The demonstrations buffer's contents for ``init``: the transitions of ``demos`` (a
    ``prior_source.DemoArrays``), or when resuming zeros shaped like the checkpoint's buffer
    (which the restore then fills), so that a resume needs no demonstrations file."""
    if not cfg.demos_in_batch:
        return None
    if resuming is not None:
        rows = checkpoint.stored_shape(resuming.state_dir, ("demos", "data", "reward"))[-1]
        return replay.init(rows, env.obs_size, env.action_size).data  # zeros of the stored shape
    batch = getattr(demos, "transitions", None)
    if batch is None:
        raise ValueError(f"demos_in_batch needs the demonstrations' transitions (kl_rl.prior_source.DemoArrays); "
                         f"algo {cfg.algo} got {'none' if demos is None else 'observations and actions only'}")
    return Transition(**{k: jax.numpy.asarray(v) for k, v in batch.items()})


@dataclass
class RunResult(LoopResult):
    """``train_runs``' result for one run: ``rows`` are that run's rows (not a list of runs')."""

    @property
    def final_eval(self) -> dict[str, Any]:
        return {k: v for k, v in self.rows[-1].items() if k.startswith("eval_")}


def run(cfg: TrainConfig, hparams: HParams, seed: int, run_dir: Path | None = None, eval_every: int = 5_000,
        progress: bool = True, overwrite: bool = False, tensorboard: bool = True, prior: Any = None,
        demos: tuple[np.ndarray, np.ndarray] | None = None, extra_config: dict[str, Any] | None = None,
        checkpoint_every: int = 10, keep_checkpoints: int = 3, resume: bool = False,
        resume_help: ResumeHelp = ResumeHelp()) -> RunResult:
    """Trains one run (R = 1 of ``train_runs``). With ``run_dir`` writes the run folder
    (``kl_rl.run_folder``); ``resume`` continues it from its latest checkpoint (same config
    required). ``prior``: pi0 of nppac / kl. ``demos``: (observations [N, o], actions [N, a]) for
    pretraining (nppac, kl, bc-sac; skipped when pretrain_epochs is 0). ``extra_config`` is
    recorded in config.json (where the prior and demos came from)."""
    cfg = cfg.validate()  # the env's preset filled in before it is recorded
    if cfg.uses_prior and prior is None:
        raise ValueError(f"algo {cfg.algo} needs a behavioral prior")
    if cfg.pretrains and demos is None and not resume:
        raise ValueError(f"algo {cfg.algo} pretrains on demonstrations: pass demos or set pretrain_epochs 0")
    record = run_record(cfg, hparams, seed, eval_every)
    if resume:
        if run_dir is None:
            raise ValueError("resuming needs the run directory")
        run_dir = Path(run_dir)
        check_resumable(run_dir / "config.json", record, "run", resume_help.if_changed)
        claim(run_dir)
    elif run_dir is not None:
        run_dir = prepare_run_dir(Path(run_dir), overwrite)
        write_json_atomic(run_dir / "config.json", {**record, **(extra_config or {})})
        if prior is not None:  # the run's own copy, so --resume needs neither demos nor a refit
            from kl_rl import priors

            priors.save(prior, run_dir / "prior")
    layout = Layout(run_dir, [run_dir]) if run_dir is not None else None
    recorded = read_record(run_dir / "config.json", "run") if resume else (extra_config or {})
    out = train_runs(SingleRun(cfg), cfg, hparams, [seed], [f"seed {seed}"], layout, eval_every=eval_every,
                     prior=prior, demos=demos, resume=resume, progress=progress, tensorboard=tensorboard,
                     checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, resume_help=resume_help,
                     demo_return=recorded.get("demos", {}).get("mean_return"))
    return RunResult(**{**vars(out), "rows": out.rows[0]})


