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
from harness import machine, table, write_json  # noqa: E402

from kl_rl.envs import VecEnv, check_env_name, make_env  # noqa: E402
from kl_rl.experts import load_expert  # noqa: E402
from kl_rl.rollout import rollout  # noqa: E402

# Each reported term and the names Brax's envs give it in their metrics (absent: 0, e.g. the
# healthy bonus of halfcheetah).
TERMS: dict[str, tuple[str, ...]] = {
    "forward": ("reward_forward", "reward_run"),
    "healthy": ("reward_survive", "reward_healthy"),
    "ctrl cost": ("reward_ctrl",),
}


def term_names(env: VecEnv) -> dict[str, str | None]:
    """The env's metric name of each reported term (None: the env has no such term). Read from the
    reset's shapes, so no MJX reset runs."""
    present = jax.eval_shape(env.reset, jax.random.key(0)).physics.metrics
    return {term: next((n for n in options if n in present), None) for term, options in TERMS.items()}


def reward_terms(env: VecEnv, policy, key: jax.Array, names: dict[str, str | None]) -> dict[str, jax.Array]:
    """Each reward term (``names``: from ``term_names``), the return and the length of one episode
    per env of ``policy`` (obs [N, o] -> action [N, a]), summed over the episode's steps: [N] each."""
    episodes = rollout(env, lambda obs, _: policy(obs), key, tuple(n for n in names.values() if n))
    sums = {term: jnp.sum(jnp.where(episodes.valid, episodes.metrics[name], 0.0), axis=0) if name
            else jnp.zeros(env.num_envs) for term, name in names.items()}
    return sums | {"return": episodes.returns, "length": episodes.lengths}


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
    env = make_env(args.env, args.episodes, args.episode_length)
    zeros = jnp.zeros((env.num_envs, env.action_size))
    policies = {"expert": expert.policy(), "zero action": lambda obs: zeros}
    names = term_names(env)
    results, rows = {}, []
    for name, policy in policies.items():
        sums = jax.jit(lambda k, p=policy: reward_terms(env, p, k, names))(jax.random.key(args.seed))
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
