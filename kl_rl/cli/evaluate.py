"""``kl-rl evaluate``: re-evaluate a saved run's policy on many episodes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from kl_rl import compile_cache


@dataclass
class EvaluateArgs:
    """Re-evaluate a run's policy (the final one, or a checkpoint's) on many episodes and write
    RUN/evaluation-<...>.json: every episode's return and length, the early ends (falls), the
    mean with its standard error and 95% bootstrap CI, the IQM, and the success rate (door)."""

    run: Annotated[Path, tyro.conf.Positional]
    """A run folder of kl-rl train (or one run folder inside a sweep folder)."""
    episodes: int = 100
    """Episodes to run."""
    checkpoint: int | None = None
    """Evaluate the checkpoint taken at this many env steps instead of the final policy."""
    stochastic: bool = False
    """Sample actions from the policy instead of its deterministic tanh(mean)."""
    seed: int = 0
    """Seed of the episodes' initial states (and of the sampled actions)."""
    env: str | None = None
    """Evaluate on another env of the same task (e.g. a door-dense expert on door; default: the run's env)."""
    chunk: int = 16
    """Episodes run in parallel at a time."""
    compile_cache: str = str(compile_cache.DEFAULT_DIR)
    """Persistent JAX compilation cache folder ("" turns it off); env KL_RL_COMPILE_CACHE."""


def evaluate(args: EvaluateArgs) -> int:
    from kl_rl.evaluation import EvaluationError, check_run

    if args.episodes < 1 or args.chunk < 1:
        raise EvaluationError(f"episodes and chunk must be >= 1 (got {args.episodes}, {args.chunk})")
    if args.checkpoint is not None and args.checkpoint < 0:
        raise EvaluationError(f"checkpoint is an env-step count >= 0 (got {args.checkpoint})")
    check_run(args.run, args.env)
    compile_cache.enable(args.compile_cache)
    import jax

    from kl_rl.evaluation import evaluate_actor, evaluation_name, load_run_policy, write_evaluation

    policy = load_run_policy(args.run, args.checkpoint)
    record = evaluate_actor(policy.cfg, policy.actor_params, args.episodes, jax.random.key(args.seed),
                            env_name=args.env, stochastic=args.stochastic, chunk=args.chunk)
    record = {"run": str(args.run), "policy": policy.source, "env_steps": policy.env_steps, "seed": args.seed,
              **record}
    path = write_evaluation(args.run, record,
                            evaluation_name(policy.source, args.episodes, args.stochastic, args.seed, args.env))
    kind = "stochastic" if args.stochastic else "deterministic"
    print(f"{args.run}: {policy.source} policy ({policy.env_steps:,} env steps), {args.episodes} {kind} episodes "
          f"on {record['env']}: return {record['mean']:.1f} ± {record['std_err']:.1f} (standard error), 95% CI "
          f"[{record['ci_low']:.1f}, {record['ci_high']:.1f}], IQM {record['iqm']:.1f}, min {record['min']:.1f}, "
          f"max {record['max']:.1f}; {record['early_ends']} of {args.episodes} ended early (fell)"
          + (f"; success rate {record['success_rate']:.0%}" if "success_rate" in record else ""))
    print(f"wrote {path}")
    return 0
