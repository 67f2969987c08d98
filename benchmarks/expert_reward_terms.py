"""What an expert's return is made of: its deterministic episodes split into the env's reward terms
(forward progress, the healthy bonus, the control cost), next to the all-zero action.

A locomotion return can be high without any locomotion: Brax's ant pays 1 per step for staying
healthy, so a policy that stands still scores about 1000. This check tells a walking expert from a
standing one.

    python benchmarks/expert_reward_terms.py --env ant [--expert data/experts/ant] [--episodes 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table, write_json  # noqa: E402

from kl_rl.envs import check_env_name, make_env  # noqa: E402
from kl_rl.experts import load_expert  # noqa: E402

# Each reported term and the names Brax's envs give it in their metrics (absent: 0, e.g. the
# healthy bonus of halfcheetah).
TERMS: dict[str, tuple[str, ...]] = {
    "forward": ("reward_forward", "reward_run"),
    "healthy": ("reward_survive", "reward_healthy"),
    "ctrl cost": ("reward_ctrl",),
}


def episode_terms(env, policy, key: jax.Array, length: int) -> dict[str, jax.Array]:
    """Sums of each reward term over one episode of ``policy`` (obs [o] -> action [a]), stopped at
    the first termination; plus the episode's length and return."""
    state = env.reset(key)
    names = {term: next((n for n in options if n in state.metrics), None) for term, options in TERMS.items()}

    def step(carry, _):
        s, alive = carry
        s2 = env.step(s, policy(s.obs))
        out = {term: (s2.metrics[name] if name else 0.0) * alive for term, name in names.items()}
        out["return"] = s2.reward * alive
        return (s2, alive * (1.0 - s2.done)), (out, alive)

    _, (sums, alive) = jax.lax.scan(step, (state, jnp.float32(1.0)), None, length=length)
    return {k: v.sum() for k, v in sums.items()} | {"length": alive.sum()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True)
    parser.add_argument("--expert", type=Path, default=None, help="default: data/experts/<env>")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/expert_reward_terms_<env>.json")
    args = parser.parse_args(argv)
    check_env_name(args.env)
    expert = load_expert(args.expert or Path("data") / "experts" / args.env)
    env = make_env(args.env, 1, args.episode_length).env  # the bare Brax env, whose metrics name the terms
    keys = jax.random.split(jax.random.key(args.seed), args.episodes)
    zero = jnp.zeros(env.action_size)
    policies = {"expert": expert.policy(), "zero action": lambda obs: zero}
    results, rows = {}, []
    for name, policy in policies.items():
        sums = jax.jit(jax.vmap(lambda k, p=policy: episode_terms(env, p, k, args.episode_length)))(keys)
        per_episode = {k: np.asarray(v).tolist() for k, v in sums.items()}
        results[name] = per_episode
        rows.append([name] + [float(np.mean(per_episode[k])) for k in ("return", *TERMS, "length")])
    print(table(rows, ["policy", "return", *TERMS, "length"]))
    print(f"means over {args.episodes} deterministic episodes of {args.env}; expert {expert.summary['env_steps']:,} "
          f"env steps, its own evaluation {expert.summary['eval_return']:.1f}")
    out = args.out or Path(__file__).parent / "results" / f"expert_reward_terms_{args.env}.json"
    write_json(out, {"env": args.env, "episodes": args.episodes, "seed": args.seed,
                     "expert_env_steps": expert.summary["env_steps"], "machine": machine(), "policies": results})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
