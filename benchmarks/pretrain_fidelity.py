"""How close does pretraining bring the actor to the demonstrations? Per env: the deterministic
return of the GP prior's own mean action (clipped into the box), of the actor pretrained toward
the GP with the KL alone (the paper's pretraining), with the KL plus the mean-action term (kl_rl's
default, ``mean_action_weight``), and of behavioral cloning on the same demonstrations; next to
the demonstrations' mean return. The deterministic returns are over ``--eval-episodes`` episodes.

    python benchmarks/pretrain_fidelity.py [--envs hopper walker2d ant] [--eval-episodes 10]

Prints a table and writes ``benchmarks/results/pretrain_fidelity.json``. The GP prior comes from
the prior cache when `kl-rl train` fitted it before (same demonstrations, options and seed 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, table, write_json  # noqa: E402

from kl_rl import compile_cache  # noqa: E402
from kl_rl.config import HParams, TrainConfig  # noqa: E402
from kl_rl.envs import ENV_NAMES, preset  # noqa: E402

VARIANTS = {  # label -> (algo, mean_action_weight)
    "kl only": ("nppac", 0.0),
    "kl + mean action": ("nppac", 1.0),
    "behavioral cloning": ("bc-sac", 0.0),
}


def measure(env: str, eval_episodes: int) -> dict:
    import jax
    import jax.numpy as jnp

    from kl_rl import priors
    from kl_rl.prior_source import demos_and_prior
    from kl_rl.rollout import rollout
    from kl_rl.train import Trainer

    base = TrainConfig(env=env, algo="nppac", total_steps=2048, eval_episodes=eval_episodes).validate()
    prior, (obs, actions), _, demo_return = demos_and_prior(base)
    hparams = HParams.create(alpha=preset(env).alpha)
    key = jax.random.key(0)
    trainer = Trainer(base)

    def prior_mean(o, _):
        return jnp.clip(priors.predict(prior, o)[0], -1.0, 1.0)

    record = {"env": env, "demo_return": demo_return,
              "saturated_demo_actions": float(np.mean(np.abs(actions) > 0.95))}
    returns = np.asarray(jax.jit(lambda k: rollout(trainer.eval_env, prior_mean, k).returns)(key))
    record["gp mean action"] = {"eval_return": float(returns.mean()), "returns": returns.tolist()}
    for label, (algo, weight) in VARIANTS.items():
        cfg = dataclasses.replace(base, algo=algo, mean_action_weight=weight)
        t0 = time.perf_counter()
        one = Trainer(cfg)
        state = jax.jit(one.init)(key, hparams, prior if cfg.uses_prior else None)
        state, losses = jax.jit(one.pretrain)(state, hparams, jnp.asarray(obs), jnp.asarray(actions))
        ev = jax.device_get(jax.jit(one.evaluate)(state))
        record[label] = {"eval_return": float(ev["eval_return"]), "returns": np.asarray(ev["eval_returns"]).tolist(),
                         "loss_first": float(losses[0]), "loss_last": float(losses[-1]),
                         "seconds": time.perf_counter() - t0}
        print(env, label, f"{record[label]['eval_return']:.0f}", flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["hopper", "walker2d", "ant"])
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pretrain_fidelity.json"))
    args = parser.parse_args(argv)
    unknown = [e for e in args.envs if e not in ENV_NAMES or e == "pointmass"]
    if unknown:
        parser.error(f"unknown env {', '.join(unknown)}; choose from halfcheetah, hopper, walker2d, ant")
    if args.eval_episodes < 1:
        parser.error(f"--eval-episodes must be >= 1 (got {args.eval_episodes})")
    compile_cache.enable(str(compile_cache.DEFAULT_DIR))
    records = [measure(env, args.eval_episodes) for env in args.envs]
    labels = ["gp mean action", *VARIANTS]
    print(table([[r["env"], f"{r['demo_return']:.0f}", *(f"{r[k]['eval_return']:.0f}" for k in labels)]
                 for r in records], ["env", "demos' mean", *labels]))
    write_json(args.out, {"records": records, "machine": machine(), "eval_episodes": args.eval_episodes})
    return 0


if __name__ == "__main__":
    sys.exit(main())
