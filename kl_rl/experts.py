"""Experts: SAC policies trained by this project, saved as a run folder and loaded back.

An expert folder is a ``kl-rl train`` run folder: ``config.json`` (the TrainConfig, hparams,
seed), ``params.msgpack`` (actor and critic parameters), ``summary.json`` (final deterministic
evaluation), metrics and a learning curve.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
from flax import serialization

from kl_rl.config import TrainConfig, config_from_json
from kl_rl.envs import make_env
from kl_rl.sac import SAC


class ExpertError(ValueError):
    """An expert folder is missing or incomplete."""


@dataclass(frozen=True)
class Expert:
    cfg: TrainConfig
    sac: SAC
    actor_params: Any
    summary: dict[str, Any]
    path: Path

    def policy(self) -> Callable[[jax.Array], jax.Array]:
        """The deterministic expert policy: obs [N, o] -> tanh(mean) [N, a]."""
        return lambda obs: self.sac.greedy_action(self.actor_params, obs)


def load_expert(path: str | Path) -> Expert:
    """Loads the actor of a finished training run folder."""
    path = Path(path)
    missing = [n for n in ("config.json", "params.msgpack", "summary.json") if not (path / n).exists()]
    if missing:
        raise ExpertError(f"{path} is not a finished kl-rl run folder (missing {', '.join(missing)}); "
                          "train one with `kl-rl train` or `kl-rl demos`")
    from kl_rl.evaluation import actor_from_stored

    cfg = config_from_json(json.loads((path / "config.json").read_text())["config"]).validate()
    env = make_env(cfg.env, 1)
    sac = SAC(cfg, env.obs_size, env.action_size)
    raw = serialization.msgpack_restore((path / "params.msgpack").read_bytes())
    if set(raw) != {"actor", "critics"}:
        raise ExpertError(f"{path / 'params.msgpack'} does not hold actor and critic parameters")
    actor = actor_from_stored(cfg, raw["actor"], str(path / "params.msgpack"), ExpertError)
    summary = json.loads((path / "summary.json").read_text())
    return Expert(cfg=cfg, sac=sac, actor_params=actor, summary=summary, path=path)


@dataclass(frozen=True)
class MadeDemonstrations:
    expert: Expert
    demos: Any  # kl_rl.demos.Demonstrations
    path: Path  # the .npz written
    trained_now: bool
    train_seconds: float  # training (or loading) the expert
    collect_seconds: float


def make_demonstrations(env: str, expert_steps: int, hparams: Any, episodes: int, episode_length: int | None,
                        noise_std: float, seed: int, data_dir: Path, retrain: bool = False, progress: bool = True,
                        log: Callable[[str], Any] = print, expert_algo: str = "sac",
                        expert_demos: Path | None = None, check_episodes: int = 50,
                        expert_batch_size: int | None = None) -> MadeDemonstrations:
    """What ``kl-rl demos`` does: train an expert into ``data_dir/experts/<env>`` (or reuse a
    finished one, or resume an interrupted one) on the env's expert env (its preset; e.g.
    door-dense for door), then roll out ``episodes`` episodes of its deterministic action plus
    Gaussian noise of std ``noise_std`` on ``env`` into ``data_dir/demos/<env>.npz``. The expert
    is SAC, or with ``expert_algo`` nppac / kl / bc-sac one learning from ``expert_demos``
    (``expert_batch_size``: its minibatch size, default the preset's). On an
    env with a success rule the expert's deterministic success rate over ``check_episodes``
    episodes is recorded too. ``hparams``: a ``config.HParamOptions``."""
    import shutil
    import time

    from kl_rl import demos as demos_lib
    from kl_rl.envs import preset
    from kl_rl.loop import ResumeHelp, run
    from kl_rl.prior_source import Source, demos_and_prior
    from kl_rl.rollout import rollout

    expert_env = preset(env).expert_env or env
    episode_length = episode_length or preset(env).episode_length
    expert_dir = Path(data_dir) / "experts" / env
    t0 = time.perf_counter()
    finished = (expert_dir / "summary.json").exists()
    if finished and not retrain:
        log(f"reusing the expert in {expert_dir} (--retrain to train a new one)")
    else:
        resume = not finished and not retrain and any((expert_dir / "checkpoints").glob("*"))
        if resume:
            log(f"resuming the interrupted expert training in {expert_dir} (--retrain starts over)")
        cfg = TrainConfig(env=expert_env, algo=expert_algo, total_steps=expert_steps,
                          batch_size=expert_batch_size).validate()
        prior, demo_arrays, extra = None, None, {}
        if cfg.uses_demos and not resume:
            prior, demo_arrays, extra, _ = demos_and_prior(cfg, Source(demos=expert_demos), seed)
        elif cfg.uses_prior:
            from kl_rl import priors

            prior = priors.load(expert_dir / "prior")
        run(cfg, hparams.hparams(expert_env, cfg.algo), seed, expert_dir, eval_every=max(expert_steps // 10, 1),
            progress=progress, overwrite=retrain, tensorboard=False, resume=resume, prior=prior, demos=demo_arrays,
            extra_config=extra,
            resume_help=ResumeHelp("the same kl-rl demos command",
                                   "pass the --expert-steps, --seed, --expert-algo, --entropy-per-dim and --critic-lr "
                                   "it was started with (see its config.json), or --retrain to start over"))
        shutil.rmtree(expert_dir / "checkpoints", ignore_errors=True)  # resumable while training; not shipped
    train_seconds = time.perf_counter() - t0
    expert = load_expert(expert_dir)
    vec_env = make_env(env, episodes, episode_length)
    t1 = time.perf_counter()
    extra_meta = {}
    if vec_env.success_metric and check_episodes:  # the expert's own success rate, without noise
        check_env = make_env(env, check_episodes, episode_length)
        policy = expert.policy()
        checked = jax.jit(lambda k: rollout(check_env, lambda obs, _: policy(obs), k,
                                            metric_names=(check_env.success_metric,)))(jax.random.key(seed + 2))
        extra_meta = {"expert_success": float(jax.numpy.mean(checked.successes(check_env))),
                      "expert_success_episodes": check_episodes}
    collected = demos_lib.collect(
        vec_env, expert.policy(), jax.random.key(seed + 1), noise_std,
        metadata={"seed": seed, "expert_dir": str(expert_dir), "expert_env": expert.cfg.env,
                  "expert_algo": expert.cfg.algo, "expert_train_steps": int(expert.summary["env_steps"]),
                  "expert_return": float(expert.summary["eval_return"]), **extra_meta,
                  "expert_train_seconds": float(expert.summary.get("train_seconds_total",
                                                                   expert.summary.get("train_seconds", float("nan"))))},
    )
    path = demos_lib.save(collected, Path(data_dir) / "demos" / env)
    return MadeDemonstrations(expert, collected, path, not finished or retrain, train_seconds,
                              time.perf_counter() - t1)
