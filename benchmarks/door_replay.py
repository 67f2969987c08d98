"""Does the MJX door port behave like the original? DAPG's human door demonstrations record each
episode's initial state, actions and door-v0 rewards; this replays every episode open-loop from
its initial state in door-dense (all episodes in one vmapped program) and compares the port's
return with the recorded one, for the port as shipped and for variants of it.

    python benchmarks/door_replay.py PICKLE [--variants port all-pairs-it4 ...]

PICKLE: DAPG's door-v0_demos.pickle (third-party data; not in this repository).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, table, write_json  # noqa: E402

from kl_rl.dapg import read_pickle  # noqa: E402
from kl_rl.envs.door import Door, build_model  # noqa: E402

# name -> build_model options
VARIANTS = {
    "port": {},
    "port-it20": {"iterations": (20, 50)},  # the XML's solver caps
    "port-it4": {"iterations": (4, 8)},
    "all-pairs-it4": {"reduce_pairs": False, "iterations": (4, 8)},
}


def replay_returns(door: Door, episodes: list[dict]) -> np.ndarray:
    """[E] the port's return of each recorded episode's actions, from its initial state."""
    horizon = max(len(e["actions"]) for e in episodes)
    actions = np.zeros((horizon, len(episodes), door.action_size), np.float32)  # [T, E, 28]
    for i, e in enumerate(episodes):
        actions[: len(e["actions"]), i] = np.clip(e["actions"], -1.0, 1.0)
    init = {k: np.stack([e["init_state_dict"][k] for e in episodes]) for k in ("qpos", "qvel", "door_body_pos")}

    def one(qpos, qvel, door_pos, acts):  # acts [T, 28]
        state = door.set_state(qpos, qvel, door_pos)
        return jax.lax.scan(lambda s, a: (lambda n: (n, n.reward))(door.step(s, a)), state, acts)[1]

    rewards = np.asarray(jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 1)))(
        init["qpos"], init["qvel"], init["door_body_pos"], actions))  # [E, T]
    return np.array([rewards[i, : len(e["actions"])].sum() for i, e in enumerate(episodes)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pickle", type=Path)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "door_replay.json")
    args = parser.parse_args(argv)
    episodes = read_pickle(args.pickle)
    recorded = np.array([float(np.sum(e["rewards"])) for e in episodes])
    rows, out = [], {}
    for name in args.variants:
        t = time.perf_counter()
        returns = replay_returns(Door("dense", build_model(**VARIANTS[name])), episodes)
        gap = np.abs(returns - recorded)
        out[name] = {"mean_abs_gap": float(gap.mean()), "max_abs_gap": float(gap.max()),
                     "seconds": time.perf_counter() - t, "options": {k: list(v) if isinstance(v, tuple) else v
                                                                      for k, v in VARIANTS[name].items()}}
        rows.append([name, float(gap.mean()), float(gap.max()), out[name]["seconds"]])
    print(f"{len(episodes)} recorded episodes, returns {recorded.min():.0f} to {recorded.max():.0f}")
    print(table(rows, ["variant", "mean |return gap|", "max |return gap|", "seconds"]))
    # Aggregates only: the per-episode returns come from third-party data, which stays out of the repository.
    write_json(args.out, {"machine": machine(), "episodes": len(episodes), "variants": out})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
