"""Command line: ``kl-rl train | demos | fit-prior | sweep ...``. Each option's help text is its field's docstring."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from kl_rl import compile_cache
from kl_rl.config import TrainConfig
from kl_rl.fit_prior import FitPriorArgs, PriorOptionArgs, fit_prior
from kl_rl.sweep_cli import SweepArgs, sweep


@dataclass
class TrainArgs:
    """Train an agent on a vectorized MJX environment and write metrics, a curve and params.
    The default algo, nppac, fits a GP prior to the env's shipped demonstrations (or loads it
    from the prior cache), pretrains the actor toward it and trains SAC with the KL penalty."""

    config: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: TrainConfig(algo="nppac"))
    alpha: float | None = None
    """Fixed weight of the KL term (nppac, kl); default: the env's preset (halfcheetah 0.1;
    hopper, walker2d, ant 3.0; the reference's 0.1 / 0.2 are in docs/head_start.md)."""
    demos: Path | None = None
    """Demonstrations for the prior and pretraining (default: data/demos/<env>.npz, shipped)."""
    num_demos: int | None = None
    """Use only the first N demonstration episodes (1: the single-demonstration question)."""
    prior_path: Path | None = None
    """Load the prior from a `kl-rl fit-prior` folder instead of fitting it."""
    prior_options: Annotated[PriorOptionArgs, tyro.conf.OmitArgPrefixes] = field(default_factory=PriorOptionArgs)
    prior_cache: str | None = None
    """Folder caching fitted priors by demos hash and options ("" turns it off); default
    ~/.cache/kl_rl/priors or env KL_RL_PRIOR_CACHE."""
    seed: int = 0
    """Seed of every random choice in the run (same seed and machine: same numbers)."""
    lr: float = 3e-4
    """Adam learning rate of the actor, the critics and the temperature."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 5e-3
    """Polyak rate of the target critics."""
    entropy_per_dim: float = -1.0
    """SAC's (sac, bc-sac) target entropy per action dimension: -1 as in the SAC paper, -0.5 as
    Brax's SAC (more exploration)."""
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


def fresh_run_dir(runs_dir: Path, base: str) -> Path:
    """``runs_dir/base``, or ``base-2``, ``base-3``, ... : the first that does not exist yet."""
    candidate, n = runs_dir / base, 1
    while candidate.exists():
        n += 1
        candidate = runs_dir / f"{base}-{n}"
    return candidate


def train(args: TrainArgs) -> int:
    if args.resume is not None:
        return _resume(args)
    cfg = args.config.validate()
    if args.checkpoint_every < 0 or args.keep_checkpoints < 1:
        raise ValueError("checkpoint-every must be >= 0 and keep-checkpoints >= 1 "
                         f"(got {args.checkpoint_every}, {args.keep_checkpoints})")
    if args.eval_every < 1:
        raise ValueError(f"eval-every must be >= 1 (got {args.eval_every})")
    if args.num_demos is not None and args.num_demos < 1:
        raise ValueError(f"num-demos must be >= 1 (got {args.num_demos})")
    compile_cache.enable(args.compile_cache)
    from kl_rl.config import PRESETS, HParams
    from kl_rl.driver import prepare_run_dir, run

    alpha = args.alpha if args.alpha is not None else float(PRESETS[cfg.env]["alpha"])
    hparams = HParams.create(actor_lr=args.lr, critic_lr=args.lr, alpha_lr=args.lr,
                             gamma=args.gamma, tau=args.tau, alpha=alpha, entropy_per_dim=args.entropy_per_dim)
    if args.run_name:
        run_dir = prepare_run_dir(args.runs_dir / args.run_name, args.overwrite)  # fail before fitting
    else:
        run_dir = fresh_run_dir(args.runs_dir, f"{cfg.env}-{cfg.algo}-s{args.seed}")
    prior, demos, extra, demo_return = demos_and_prior(cfg, args.demos, args.num_demos, args.prior_options,
                                                       args.prior_cache, args.prior_path, args.seed)
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
    if demo_return is not None:
        print(f"final eval return {ev['eval_return']:.1f} vs demonstrations' mean return {demo_return:.1f}")


def _resume(args: TrainArgs) -> int:
    """``--resume DIR``: the run's saved config, hparams, seed and prior; explicit options that
    contradict them are refused (config.json is the source of truth)."""
    import json

    from kl_rl.config import HParams, config_from_json
    from kl_rl.driver import ConfigChangedError, run

    path = args.resume / "config.json"
    if not path.exists():
        raise ConfigChangedError(f"{args.resume} is not a kl-rl run folder (no config.json); check the --resume path")
    saved = json.loads(path.read_text())
    cfg = config_from_json(saved["config"]).validate()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    hparams = HParams.create(**saved["hparams"])
    defaults = TrainArgs()
    conflicts = [f"--{name.replace('_', '-')}" for name in fields
                 if getattr(args.config, name) != getattr(defaults.config, name)
                 and getattr(args.config, name) != getattr(cfg, name)]
    for flag, given, default, kept in (("--seed", args.seed, defaults.seed, saved["seed"]),
                                       ("--lr", args.lr, defaults.lr, saved["hparams"]["actor_lr"]),
                                       ("--gamma", args.gamma, defaults.gamma, saved["hparams"]["gamma"]),
                                       ("--tau", args.tau, defaults.tau, saved["hparams"]["tau"]),
                                       ("--alpha", args.alpha, defaults.alpha, saved["hparams"]["alpha"]),
                                       ("--entropy-per-dim", args.entropy_per_dim, defaults.entropy_per_dim,
                                        hparams.entropy_per_dim),  # a folder from before the setting: its default
                                       ("--eval-every", args.eval_every, defaults.eval_every,
                                        saved.get("eval_every", args.eval_every))):
        if given != default and abs(float(given) - float(kept)) > 1e-6 * max(1.0, abs(float(kept))):
            conflicts.append(flag)
    if conflicts:
        raise ConfigChangedError(f"cannot resume {args.resume} with a changed config ({', '.join(sorted(conflicts))}); "
                                 "drop those options to continue with the run's own settings")
    compile_cache.enable(args.compile_cache)
    prior = None
    if cfg.uses_prior:
        from kl_rl import priors

        prior = priors.load(args.resume / "prior")
    result = run(cfg, hparams, saved["seed"], args.resume, eval_every=saved.get("eval_every", args.eval_every),
                 progress=args.progress,
                 prior=prior, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                 resume=True)
    _report(cfg, result, args.resume, saved.get("demos", {}).get("mean_return"))
    return 0


def demos_and_prior(cfg: TrainConfig, demos_path: Path | None, num_demos: int | None,
                    prior_options: PriorOptionArgs, prior_cache: str | None, prior_path: Path | None, seed: int):
    """(prior, (demo obs, demo actions), config record, demos' mean return) for algos that use
    demonstrations; Nones for plain SAC."""
    if not cfg.uses_demos:
        return None, None, {}, None
    import numpy as np

    from kl_rl.envs import make_env
    from kl_rl.fit_prior import kind_options
    from kl_rl.prior_source import get_prior, load_demos

    env = make_env(cfg.env, 1, cfg.episode_length)
    data, path = load_demos(cfg.env, env.obs_size, env.action_size, demos_path, num_demos)
    demo_return = float(data.episode_returns.mean())
    extra = {"demos": {"path": str(path), "num_episodes": data.num_episodes, "num_steps": data.num_steps,
                       "mean_return": demo_return}}
    prior = None
    if cfg.uses_prior:
        print(f"prior: {cfg.prior} on {data.num_episodes} demonstration episodes of {path} ...", flush=True)
        prior, info = get_prior(cfg.prior, data, path, num_demos, kind_options(prior_options, cfg.prior, cfg.env),
                                seed, prior_cache, prior_path)
        seconds = info.get("fit_seconds")
        print(f"prior: {info['source']}" + (f" ({seconds:.1f} s)" if seconds and info["source"] == "fitted" else ""),
              flush=True)
        extra["prior"] = info
    return prior, (np.asarray(data.observations), np.asarray(data.actions)), extra, demo_return


@dataclass
class DemosArgs:
    """Train (or reuse) an expert with kl_rl SAC, roll it out with Gaussian action noise, and write
    data/demos/<env>.npz + .json and the expert to data/experts/<env>/."""

    env: str = "halfcheetah"
    """Environment: ant, halfcheetah, hopper, walker2d (MJX) or pointmass (toy)."""
    expert_steps: int = 100_000
    """Training budget of the expert in env transitions (ignored when an expert is reused)."""
    episodes: int = 15
    """Demonstration episodes to collect (in parallel)."""
    episode_length: int = 1000
    """Time limit of each demonstration episode."""
    noise_std: float = 0.1
    """Std of the Gaussian noise added to the expert's deterministic action (then clipped)."""
    seed: int = 0
    """Seed of the expert's training and of the demonstration rollouts."""
    entropy_per_dim: float = -1.0
    """The expert's SAC target entropy per action dimension (-1: the SAC paper; -0.5: Brax's SAC)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the expert's critics (the actor and the temperature keep 3e-4); the
    shipped ant expert used 1e-3 with --entropy-per-dim -0.5 (data/README.md)."""
    data_dir: Path = Path("data")
    """Folder that receives demos/<env>.npz|.json and experts/<env>/."""
    retrain: bool = False
    """Train a new expert even when data/experts/<env> already holds a finished one (or an
    interrupted one, which is otherwise resumed from its last checkpoint)."""
    compile_cache: str = str(compile_cache.DEFAULT_DIR)
    """Persistent JAX compilation cache folder ("" turns it off); env KL_RL_COMPILE_CACHE."""
    progress: bool = True
    """Show a progress bar while the expert trains."""


def demos(args: DemosArgs) -> int:
    from kl_rl.envs import check_env_name

    check_env_name(args.env)
    if args.episodes < 1 or args.noise_std < 0 or args.expert_steps < 1 or args.critic_lr <= 0:
        raise ValueError("episodes and expert-steps must be >= 1, noise-std >= 0 and critic-lr > 0 "
                         f"(got {args.episodes}, {args.expert_steps}, {args.noise_std}, {args.critic_lr:g})")
    compile_cache.enable(args.compile_cache)
    import time

    import jax
    from rich.console import Console
    from rich.table import Table

    from kl_rl import demos as demos_lib
    from kl_rl.config import HParams
    from kl_rl.driver import ResumeHelp, run
    from kl_rl.envs import make_env
    from kl_rl.experts import load_expert

    console = Console()
    if not console.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        console = Console(width=120)
    expert_dir = args.data_dir / "experts" / args.env
    t0 = time.perf_counter()
    finished = (expert_dir / "summary.json").exists()
    if finished and not args.retrain:
        console.print(f"reusing the expert in {expert_dir} (--retrain to train a new one)")
        trained_now = False
    else:
        resume = not finished and not args.retrain and any((expert_dir / "checkpoints").glob("*"))
        if resume:
            console.print(f"resuming the interrupted expert training in {expert_dir} (--retrain starts over)")
        cfg = TrainConfig(env=args.env, total_steps=args.expert_steps).validate()
        run(cfg, HParams.create(critic_lr=args.critic_lr, entropy_per_dim=args.entropy_per_dim), args.seed, expert_dir,
            eval_every=max(args.expert_steps // 10, 1), progress=args.progress, overwrite=args.retrain,
            tensorboard=False, resume=resume,
            resume_help=ResumeHelp("the same kl-rl demos command",
                                   "pass the --expert-steps, --seed, --entropy-per-dim and --critic-lr it was "
                                   "started with (see its config.json), or --retrain to start over"))
        shutil.rmtree(expert_dir / "checkpoints", ignore_errors=True)  # resumable while training; not shipped
        trained_now = True
    train_seconds = time.perf_counter() - t0
    expert = load_expert(expert_dir)
    env = make_env(args.env, args.episodes, args.episode_length)
    t1 = time.perf_counter()
    collected = demos_lib.collect(
        env, expert.policy(), jax.random.key(args.seed + 1), args.noise_std,
        metadata={"seed": args.seed, "expert_dir": str(expert_dir),
                  "expert_train_steps": int(expert.summary["env_steps"]),
                  "expert_return": float(expert.summary["eval_return"]),
                  "expert_train_seconds": float(expert.summary.get("train_seconds_total",
                                                                   expert.summary.get("train_seconds", float("nan"))))},
    )
    path = demos_lib.save(collected, args.data_dir / "demos" / args.env)
    returns = collected.episode_returns
    table = Table(title=f"{args.env} demonstrations")
    for column in ("expert return", "demo mean", "min", "max", "episodes", "steps", "noise", "budget",
                   "train s" if trained_now else "load s", "collect s"):
        table.add_column(column, justify="right")
    table.add_row(f"{expert.summary['eval_return']:.1f}", f"{returns.mean():.1f}", f"{returns.min():.1f}",
                  f"{returns.max():.1f}", str(collected.num_episodes), str(collected.num_steps),
                  f"{args.noise_std:g}", f"{expert.summary['env_steps']:,}", f"{train_seconds:.0f}",
                  f"{time.perf_counter() - t1:.0f}")
    console.print(table)
    console.print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


COMMANDS = {"train": TrainArgs, "demos": DemosArgs, "fit-prior": FitPriorArgs, "sweep": SweepArgs}
HANDLERS = {TrainArgs: train, DemosArgs: demos, FitPriorArgs: fit_prior, SweepArgs: sweep}


def main(argv: list[str] | None = None) -> int:
    """Runs a subcommand. Bad input is one line on stderr and exit code 2; ``--debug`` (anywhere
    on the line) shows the full traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    args = tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv, prog="kl-rl")
    try:
        return HANDLERS[type(args)](args)
    except KeyboardInterrupt as err:  # Ctrl-C: the driver checkpointed the last finished epoch
        if debug:
            raise
        print(f"kl-rl: {err or 'interrupted'}", file=sys.stderr)
        return 130
    except (ValueError, FileExistsError, FileNotFoundError) as err:  # UnknownEnvError, DemosError, PriorError, ...
        if debug:
            raise
        message = " ".join(str(err).split())  # one line, whatever the exception's text
        print(f"kl-rl: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
