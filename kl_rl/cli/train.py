"""``kl-rl train``: one run, from settings or from a stopped run's folder (``--resume``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from kl_rl import compile_cache
from kl_rl.config import HParamOptions, TrainConfig
from kl_rl.prior_source import Source


@dataclass
class TrainArgs:
    """Train an agent on a vectorized MJX environment and write metrics, a curve and params.
    The default algo, nppac, fits a GP prior to the env's shipped demonstrations (or loads it
    from the prior cache), pretrains the actor toward it and trains SAC with the KL penalty."""

    config: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: TrainConfig(algo="nppac"))
    hparams: Annotated[HParamOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=HParamOptions)
    source: Annotated[Source, tyro.conf.OmitArgPrefixes] = field(default_factory=Source)
    seed: int = 0
    """Seed of every random choice in the run (same seed and machine: same numbers)."""
    eval_every: int = 5_000
    """Evaluate the deterministic policy every this many transitions (and at the end)."""
    run_name: str | None = None
    """Output folder under runs-dir (default: <env>-<algo>-s<seed>, numbered -2, -3, ... when
    taken, so earlier results are never overwritten)."""
    runs_dir: Path = Path("runs")
    """Folder that holds the run folders."""
    overwrite: bool = False
    """Replace the results of an existing run folder of the same name."""
    compile_cache: str = str(compile_cache.DEFAULT_DIR)
    """Persistent JAX compilation cache folder ("" turns it off); env KL_RL_COMPILE_CACHE."""
    progress: bool = True
    """Show a progress bar (--no-progress for plain logs)."""
    checkpoint_every: int = 10
    """Checkpoint the whole training state every this many epochs (0: only after pretraining and
    at the end), in <run>/checkpoints."""
    keep_checkpoints: int = 3
    """Checkpoints kept (the newest)."""
    resume: Path | None = None
    """Continue this run folder from its latest checkpoint, with its own saved settings (other
    options left at their defaults; a conflicting one is an error)."""


def train(args: TrainArgs) -> int:
    if args.resume is not None:
        return _resume(args)
    cfg = args.hparams.configure(args.config).validate()
    hparams = args.hparams.hparams(cfg.env, cfg.algo)
    if args.checkpoint_every < 0 or args.keep_checkpoints < 1:
        raise ValueError("checkpoint-every must be >= 0 and keep-checkpoints >= 1 "
                         f"(got {args.checkpoint_every}, {args.keep_checkpoints})")
    if args.eval_every < 1:
        raise ValueError(f"eval-every must be >= 1 (got {args.eval_every})")
    if args.source.num_demos is not None and args.source.num_demos < 1:
        raise ValueError(f"num-demos must be >= 1 (got {args.source.num_demos})")
    compile_cache.enable(args.compile_cache)
    from kl_rl.loop import run
    from kl_rl.prior_source import demos_and_prior
    from kl_rl.run_folder import fresh_run_dir, prepare_run_dir

    if args.run_name:
        run_dir = prepare_run_dir(args.runs_dir / args.run_name, args.overwrite)  # fail before fitting
    else:
        run_dir = fresh_run_dir(args.runs_dir, f"{cfg.env}-{cfg.algo}-s{args.seed}")
    prior, demos, extra, demo_return = demos_and_prior(cfg, args.source, args.seed)
    result = run(cfg, hparams, args.seed, run_dir, eval_every=args.eval_every,
                 progress=args.progress, overwrite=args.overwrite, prior=prior, demos=demos, extra_config=extra,
                 checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints)
    _report(cfg, result, run_dir, demo_return)
    return 0


def _report(cfg: TrainConfig, result, run_dir: Path, demo_return: float | None) -> None:
    ev = result.final_eval
    print(f"{cfg.env} {cfg.algo}: {result.rows[-1]['env_steps']} env steps, eval return "
          f"{ev['eval_return']:.1f} (min {ev['eval_return_min']:.1f}, max {ev['eval_return_max']:.1f}) "
          f"over {cfg.eval_episodes} episodes; compile {result.compile_seconds:.1f}s, "
          f"pretrain {result.pretrain_seconds:.1f}s, train {result.train_seconds:.1f}s; results in {run_dir}")
    if "eval_success" in ev:
        print(f"success rate {ev['eval_success']:.0%} of {cfg.eval_episodes} deterministic episodes")
    for final in result.final_evals or []:
        print(f"final evaluation, {final['episodes']} deterministic episodes: return {final['mean']:.1f} ± "
              f"{final['std_err']:.1f} (standard error; 95% CI [{final['ci_low']:.1f}, {final['ci_high']:.1f}], "
              f"IQM {final['iqm']:.1f}); {final['early_ends']} ended early"
              + (f"; success rate {final['success_rate']:.0%}" if "success_rate" in final else ""))
    if demo_return is not None:  # the most episodes measured at the end against the demonstrations
        closing = (result.final_evals or [None])[0]
        mean, episodes = (closing["mean"], closing["episodes"]) if closing else (ev["eval_return"], cfg.eval_episodes)
        print(f"final return {mean:.1f} ({episodes} episodes) vs demonstrations' mean return {demo_return:.1f}")


def _resume(args: TrainArgs) -> int:
    """``--resume DIR``: the run's saved config, hparams, seed and prior; explicit options that
    contradict them are refused (config.json is the source of truth). Which options those are
    follows from the fields of TrainConfig, HParamOptions and the recorded TrainArgs fields."""
    from kl_rl.config import HParams, config_from_json
    from kl_rl.loop import run
    from kl_rl.run_folder import ConfigChangedError, read_record

    saved = read_record(args.resume / "config.json", "run")
    cfg = config_from_json(saved["config"]).validate()
    defaults = TrainArgs()
    conflicts = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(TrainConfig)
                 if getattr(args.config, f.name) != getattr(defaults.config, f.name)
                 and getattr(args.config, f.name) != getattr(cfg, f.name)]
    conflicts += args.hparams.conflicts(cfg.env, saved["hparams"], cfg.algo)
    conflicts += [f"--{name.replace('_', '-')}" for name in ("seed", "eval_every")  # TrainArgs' recorded fields
                  if getattr(args, name) != getattr(defaults, name) and getattr(args, name) != saved.get(name)]
    if conflicts:
        raise ConfigChangedError(f"cannot resume {args.resume} with a changed config ({', '.join(sorted(conflicts))}); "
                                 "drop those options to continue with the run's own settings")
    compile_cache.enable(args.compile_cache)
    prior = None
    if cfg.uses_prior:
        from kl_rl import priors

        prior = priors.load(args.resume / "prior")
    result = run(cfg, HParams.create(**saved["hparams"]), saved["seed"], args.resume,
                 eval_every=saved.get("eval_every", args.eval_every), progress=args.progress, prior=prior,
                 checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints, resume=True)
    _report(cfg, result, args.resume, saved.get("demos", {}).get("mean_return"))
    return 0
