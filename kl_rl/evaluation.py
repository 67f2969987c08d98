"""Evaluating a trained policy on many episodes: the final evaluation of a training run and
``kl-rl evaluate``.

The periodic evaluations of training use a few episodes (``eval_episodes``) for a learning
curve; one number that a run is judged by needs more, because some policies fail on a few
episodes at once (the shipped ant expert over 100 episodes: 3,887.6 ± 114.5, 15 of them ending
early with returns down to -77.4). Episodes run ``chunk`` at a time in parallel (one compiled
rollout; MJX on a 2-core CPU can stall with 64 or more envs).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from kl_rl.config import TrainConfig, config_from_json
from kl_rl.rollout import rollout
from kl_rl.sac import SAC
from kl_rl.sweep_summary import episode_statistics

DEFAULT_CHUNK = 16  # parallel episodes per rollout


class EvaluationError(ValueError):
    """A run folder, checkpoint or env that cannot be evaluated (one line)."""


def evaluate_actor(cfg: TrainConfig, actor_params: Any, episodes: int, key: jax.Array, *, env_name: str | None = None,
                   stochastic: bool = False, chunk: int = DEFAULT_CHUNK) -> dict[str, Any]:
    """Runs ``episodes`` episodes of the actor (deterministic tanh(mean), or sampled with
    ``stochastic``) on ``env_name`` (default: the run's env) with the run's episode length;
    returns the per-episode returns, lengths, early ends (terminated before the time limit: a
    fall) and successes (envs with a success rule), and their statistics: mean, standard error,
    95% bootstrap CI of the mean, IQM."""
    from kl_rl.envs import make_env

    if episodes < 1:
        raise EvaluationError(f"episodes must be >= 1 (got {episodes})")
    cfg = cfg.validate()
    size = min(chunk, episodes)
    env = make_env(env_name or cfg.env, size, cfg.episode_length)
    sac = SAC(cfg, env.obs_size, env.action_size)
    metric = (env.success_metric,) if env.success_metric else ()

    @jax.jit
    def one_chunk(params: Any, key_chunk: jax.Array) -> dict[str, jax.Array]:
        eps = rollout(env, sac.policy(params, stochastic), key_chunk, metric_names=metric)
        out = {"returns": eps.returns, "lengths": eps.lengths, "early": jnp.any(eps.terminated, axis=0)}  # [size] each
        if metric:
            out["success"] = eps.successes(env)
        return out

    start = time.perf_counter()
    parts = [jax.device_get(one_chunk(actor_params, jax.random.fold_in(key, i)))
             for i in range(-(-episodes // size))]
    joined = {k: np.concatenate([p[k] for p in parts])[:episodes] for k in parts[0]}  # [episodes] each
    record = {"env": env.name, "stochastic": stochastic,
              **episode_statistics(joined["returns"], joined["early"], joined.get("success")),
              "lengths": joined["lengths"].astype(int).tolist(), "early_end": joined["early"].astype(bool).tolist()}
    if "success" in joined:
        record["successes"] = joined["success"].astype(bool).tolist()
    return {**record, "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- run folders


@dataclasses.dataclass(frozen=True)
class RunPolicy:
    """A run folder's actor: its config, the actor parameters, and where they came from."""

    cfg: TrainConfig
    actor_params: Any
    source: str  # "final" or "checkpoint <env steps>"
    env_steps: int


def run_config(run_dir: Path) -> tuple[TrainConfig, dict[str, Any]]:
    """A run folder's TrainConfig and config.json record; one-line error if it is not a run folder."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        hint = " (a sweep folder: pass one of its run folders)" if (Path(run_dir) / "sweep.json").exists() else ""
        raise EvaluationError(f"{run_dir} is not a kl-rl run folder (no config.json){hint}")
    record = json.loads(path.read_text())
    return config_from_json(record["config"]).validate(), record


def check_run(run_dir: Path, env: str | None) -> TrainConfig:
    """The checks of ``kl-rl evaluate`` and ``render`` before anything compiles: a run folder,
    and ``env`` (if given) of the run's task. Returns the run's config."""
    from kl_rl.envs import check_env_name, task_of

    if not Path(run_dir).is_dir():
        raise EvaluationError(f"no run folder at {run_dir}")
    cfg, _ = run_config(run_dir)
    if env is not None and task_of(check_env_name(env)) != task_of(cfg.env):
        raise EvaluationError(f"--env {env} is another task than the run's env {cfg.env}; choose an env of "
                              f"task {task_of(cfg.env)}")
    return cfg


def actor_from_stored(cfg: TrainConfig, stored: Any, where: str, error: type[ValueError] = ValueError) -> Any:
    """``stored`` (the actor's parameters as a state dict) as the actor of ``cfg``'s SAC, its
    shapes checked; ``error`` (one line, naming ``where``) when they do not fit."""
    from kl_rl.envs import make_env

    env = make_env(cfg.env, 1)
    template = SAC(cfg, env.obs_size, env.action_size).actor.init(jax.random.key(0),
                                                                 jnp.zeros((1, env.obs_size), jnp.float32))
    try:
        actor = serialization.from_state_dict(template, stored)
    except (ValueError, KeyError, TypeError) as err:
        raise error(f"{where} does not hold this run's actor ({err})") from None
    if not all(jax.tree.leaves(jax.tree.map(lambda a, b: np.shape(a) == np.shape(b), template, actor))):
        raise error(f"{where} holds actor shapes that do not match the run's config.json")
    return actor


def load_run_policy(run_dir: Path, checkpoint_steps: int | None = None) -> RunPolicy:
    """The actor of run folder ``run_dir``: the final one (params.msgpack) or the one in the
    checkpoint taken at ``checkpoint_steps`` env steps (a sweep's run reads its row of the
    sweep's checkpoint). One-line EvaluationError naming what is missing."""
    run_dir = Path(run_dir)
    cfg, record = run_config(run_dir)
    if checkpoint_steps is None:
        path = run_dir / "params.msgpack"
        if not path.exists():
            raise EvaluationError(f"{run_dir} has no final policy (params.msgpack): the run has not finished; "
                                  "pass --checkpoint STEPS, or resume it first")
        raw = serialization.msgpack_restore(path.read_bytes())
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
        return RunPolicy(cfg, actor_from_stored(cfg, raw.get("actor"), str(path), EvaluationError), "final",
                         int(summary.get("env_steps", cfg.total_steps)))
    from kl_rl import checkpoint

    sweep_dir = Path(record["sweep"]) if record.get("sweep") else None
    state_dir = sweep_dir if sweep_dir is not None else run_dir
    if sweep_dir is not None and not sweep_dir.is_absolute() and not sweep_dir.exists():
        state_dir = run_dir.parent  # a sweep folder moved or read from another working directory
    per_epoch = cfg.env_steps_per_epoch
    available = sorted(checkpoint.all_epochs(state_dir))  # oldest first, as listed
    epoch = checkpoint_steps // per_epoch
    if checkpoint_steps % per_epoch or epoch not in available:
        listed = ", ".join(str(e * per_epoch) for e in available) or "none"
        raise EvaluationError(f"no checkpoint at {checkpoint_steps} env steps in {state_dir / 'checkpoints'}; "
                              f"available (env steps): {listed}")
    stored = checkpoint.restore_raw(state_dir, epoch)["agent"]["actor_params"]
    if sweep_dir is not None:  # the sweep's state has a leading run axis: this run's row
        from kl_rl.sweep import runs_from_record

        sweep_record = json.loads((state_dir / "sweep.json").read_text())
        names = [r.name for r in runs_from_record(sweep_record)]
        if run_dir.name not in names:
            raise EvaluationError(f"{run_dir.name} is not a run of the sweep in {state_dir}")
        index = names.index(run_dir.name)
        stored = jax.tree.map(lambda a: np.asarray(a)[index], stored)
    return RunPolicy(cfg, actor_from_stored(cfg, stored, f"checkpoint {epoch} of {state_dir}", EvaluationError),
                     f"checkpoint {checkpoint_steps}", checkpoint_steps)


def evaluation_name(source: str, episodes: int, stochastic: bool, seed: int, env: str | None) -> str:
    """``evaluation-<final|ckpt-STEPS>[-<env>]-<det|stoch>-n<episodes>-s<seed>.json``."""
    what = "final" if source == "final" else "ckpt-" + source.split()[-1]
    return (f"evaluation-{what}{'-' + env if env else ''}-{'stoch' if stochastic else 'det'}-n{episodes}"
            f"-s{seed}.json")


def write_evaluation(run_dir: Path, record: dict[str, Any], name: str) -> Path:
    from kl_rl.run_folder import write_json_atomic

    path = Path(run_dir) / name
    write_json_atomic(path, record)
    return path
