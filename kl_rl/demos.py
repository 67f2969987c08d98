"""Expert demonstrations: a pytree of flat per-step arrays, ``.npz`` + ``.json`` storage with
validation, selection of the first (or best) episodes, and collection from any policy with action noise.

Steps are stored episode after episode; ``episode_ids`` and ``episode_lengths`` say where each
episode starts and ends. ``terminals`` marks MDP ends, ``truncations`` time-limit ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

import kl_rl
from kl_rl.envs import VecEnv
from kl_rl.rollout import rollout

ARRAYS = ("observations", "actions", "rewards", "terminals", "truncations", "episode_ids", "episode_lengths")


class DemosError(ValueError):
    """A demonstrations file is missing, malformed or does not fit the env."""


@struct.dataclass
class Demonstrations:
    observations: np.ndarray  # [S, obs_size] float32
    actions: np.ndarray  # [S, action_size] float32 in [-1, 1]
    rewards: np.ndarray  # [S] float32
    terminals: np.ndarray  # [S] bool, the MDP ended after this step
    truncations: np.ndarray  # [S] bool, the time limit ended the episode after this step
    episode_ids: np.ndarray  # [S] int32, 0..E-1, non-decreasing
    episode_lengths: np.ndarray  # [E] int32
    metadata: dict[str, Any] = struct.field(pytree_node=False, default_factory=dict)

    @property
    def num_episodes(self) -> int:
        return int(self.episode_lengths.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def episode_returns(self) -> np.ndarray:  # [E]
        return np.bincount(np.asarray(self.episode_ids), weights=np.asarray(self.rewards, np.float64),
                           minlength=self.num_episodes)


def _paths(path: str | Path) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix in (".npz", ".json"):
        base = base.with_suffix("")
    return base.with_suffix(".npz"), base.with_suffix(".json")


def save(demos: Demonstrations, path: str | Path) -> Path:
    """Writes ``<path>.npz`` (compressed float32 arrays) and ``<path>.json`` (metadata),
    each through a temporary file, so a crash never leaves a half-written pair."""
    validate(demos)
    npz, meta = _paths(path)
    npz.parent.mkdir(parents=True, exist_ok=True)
    metadata = {**demos.metadata, "obs_size": int(demos.observations.shape[1]),
                "action_size": int(demos.actions.shape[1]), "num_episodes": demos.num_episodes,
                "num_steps": demos.num_steps, "episode_returns": [float(r) for r in demos.episode_returns],
                "kl_rl_version": kl_rl.__version__}
    tmp_npz = npz.with_suffix(".tmp.npz")
    np.savez_compressed(tmp_npz, **{name: np.asarray(getattr(demos, name)) for name in ARRAYS})
    tmp_meta = meta.with_suffix(".tmp.json")
    tmp_meta.write_text(json.dumps(metadata, indent=2))
    tmp_npz.replace(npz)
    tmp_meta.replace(meta)
    return npz


def load(path: str | Path, obs_size: int | None = None, action_size: int | None = None) -> Demonstrations:
    """Reads and validates a demonstrations file; optionally checks the env's dimensions."""
    npz, meta = _paths(path)
    if not npz.exists():
        raise DemosError(f"demonstrations file {npz} not found; create it with `kl-rl demos --env <name>`")
    try:
        with np.load(npz, allow_pickle=False) as data:
            missing = [name for name in ARRAYS if name not in data.files]
            if missing:
                raise DemosError(f"{npz} is not a kl_rl demonstrations file (no {', '.join(missing)}); "
                                 "make one with `kl-rl demos`")
            arrays = {name: data[name] for name in ARRAYS}
    except DemosError:
        raise
    except Exception as err:  # zip or npy format errors
        raise DemosError(f"{npz} is not a kl_rl demonstrations file ({type(err).__name__}: {err}); it may be "
                         "truncated or corrupt: make it again with `kl-rl demos`") from None
    metadata: dict[str, Any] = {}
    if meta.exists():
        try:
            metadata = json.loads(meta.read_text())
        except json.JSONDecodeError as err:
            raise DemosError(f"{meta} is not valid JSON ({err}); restore it or re-create the demos") from None
    demos = Demonstrations(**arrays, metadata=metadata)
    validate(demos, obs_size, action_size, source=str(npz))
    return demos


def validate(demos: Demonstrations, obs_size: int | None = None, action_size: int | None = None,
             source: str = "demonstrations") -> Demonstrations:
    """Raises a one-line ``DemosError`` for wrong shapes or dims, inconsistent episode
    bookkeeping, non-finite values or actions outside [-1, 1]."""
    obs, act = np.asarray(demos.observations), np.asarray(demos.actions)
    if obs.ndim != 2 or act.ndim != 2:
        raise DemosError(f"{source}: observations and actions must be 2-D (got {obs.shape} and {act.shape})")
    steps = obs.shape[0]
    for name in ("actions", "rewards", "terminals", "truncations", "episode_ids"):
        if np.asarray(getattr(demos, name)).shape[0] != steps:
            raise DemosError(f"{source}: inconsistent lengths: {name} has "
                             f"{np.asarray(getattr(demos, name)).shape[0]} steps, observations {steps}")
    lengths, ids = np.asarray(demos.episode_lengths), np.asarray(demos.episode_ids)
    expected_ids = np.repeat(np.arange(lengths.shape[0]), np.maximum(lengths, 0))
    if lengths.sum() != steps or (lengths < 1).any() or not np.array_equal(ids, expected_ids):
        raise DemosError(f"{source}: inconsistent lengths: episode_lengths sum to {lengths.sum()} and "
                         f"episode_ids do not split the {steps} steps into them")
    if obs_size is not None and obs.shape[1] != obs_size:
        raise DemosError(f"{source}: observations have {obs.shape[1]} dims but the env has {obs_size}; "
                         "use the demonstrations made for this env")
    if action_size is not None and act.shape[1] != action_size:
        raise DemosError(f"{source}: actions have {act.shape[1]} dims but the env has {action_size}; "
                         "use the demonstrations made for this env")
    for name in ("observations", "actions", "rewards"):
        if not np.isfinite(np.asarray(getattr(demos, name))).all():
            raise DemosError(f"{source}: {name} contain NaN or inf values")
    if np.abs(act).max(initial=0.0) > 1.0:
        raise DemosError(f"{source}: actions outside [-1, 1] (max |a| = {np.abs(act).max():.3g})")
    stated = demos.metadata.get("episode_returns")
    if stated is not None and not np.allclose(stated, demos.episode_returns, rtol=1e-4, atol=1e-3):
        raise DemosError(f"{source}: metadata episode_returns do not match the stored rewards")
    return demos


PICKS = ("first", "best")
"""How ``select`` chooses episodes: the file's first ones, or the highest-return ones (on a
binary-reward task such as door, those that succeed soonest; a file's first episode may fail)."""


def select(demos: Demonstrations, num_episodes: int, pick: str = "first") -> Demonstrations:
    """``num_episodes`` episodes (e.g. 1 for the single-demonstration experiment): the first ones,
    or with ``pick="best"`` the highest-return ones (ties: the earlier), kept in file order."""
    if not 1 <= num_episodes <= demos.num_episodes:
        raise DemosError(f"cannot select {num_episodes} episodes from {demos.num_episodes}; "
                         f"choose 1 to {demos.num_episodes}")
    if pick not in PICKS:
        raise DemosError(f"unknown episode pick {pick!r}; choose from {', '.join(PICKS)}")
    returns = demos.episode_returns  # [E]
    chosen = (np.arange(num_episodes) if pick == "first"
              else np.sort(np.argsort(-returns, kind="stable")[:num_episodes]))  # [n] episode indices
    ids = np.asarray(demos.episode_ids)
    keep = np.isin(ids, chosen)  # [S]
    kept = {name: np.asarray(getattr(demos, name))[keep] for name in ARRAYS
            if name not in ("episode_lengths", "episode_ids")}
    lengths = np.asarray(demos.episode_lengths)[chosen]  # [n]
    metadata = {**demos.metadata, "num_episodes": num_episodes, "num_steps": int(lengths.sum()),
                "episode_returns": [float(r) for r in returns[chosen]]}
    if pick != "first":
        metadata["episodes"] = [int(i) for i in chosen]
    return Demonstrations(**kept, episode_ids=np.repeat(np.arange(num_episodes, dtype=ids.dtype), lengths),
                          episode_lengths=lengths, metadata=metadata)


def transitions(demos: Demonstrations, source: str = "demonstrations") -> dict[str, np.ndarray]:
    """The demonstrations as (s, a, r, s', terminated) transitions for the replay batch: s' is
    the episode's next observation; an episode's last step keeps its own observation as s' when
    the MDP ended there (the TD target does not bootstrap from it) and is left out when the time
    limit ended it (its true s' was not recorded). Raises a one-line ``DemosError`` where an
    episode's end is neither, since its target cannot be known. Returns arrays with leading [D]."""
    obs = np.asarray(demos.observations, np.float32)
    terminals, truncations = np.asarray(demos.terminals, bool), np.asarray(demos.truncations, bool)
    ends = np.cumsum(np.asarray(demos.episode_lengths)) - 1  # [E] index of each episode's last step
    unknown = np.flatnonzero(~terminals[ends] & ~truncations[ends])
    if unknown.size:
        raise DemosError(f"{source}: episode {int(unknown[0])} ends neither terminated nor truncated, so its last "
                         "transition's target is unknown; re-create the file with `kl-rl demos` (or set its "
                         "terminals / truncations)")
    next_obs = np.concatenate([obs[1:], obs[-1:]])
    next_obs[ends] = obs[ends]  # no next observation across episodes
    keep = np.ones(obs.shape[0], bool)
    keep[ends[truncations[ends] & ~terminals[ends]]] = False
    return {"obs": obs[keep], "action": np.asarray(demos.actions, np.float32)[keep],
            "reward": np.asarray(demos.rewards, np.float32)[keep], "next_obs": next_obs[keep],
            "terminated": terminals[keep].astype(np.float32)}


def collect(env: VecEnv, policy: Callable[[jax.Array], jax.Array], key: jax.Array, noise_std: float,
            metadata: dict[str, Any] | None = None) -> Demonstrations:
    """Rolls out ``policy(obs [N, o]) -> action [N, a]`` for one episode in each of the
    ``env.num_envs`` envs, adding N(0, noise_std^2) noise to every action and clipping to the
    box, as one jitted rollout; returns the episodes as flat ``Demonstrations``."""
    if noise_std < 0:
        raise DemosError(f"noise std must be >= 0 (got {noise_std})")

    def act(obs, key_t):
        action = policy(obs)
        return jnp.clip(action + noise_std * jax.random.normal(key_t, action.shape), -1.0, 1.0)

    metric_names = (env.success_metric,) if env.success_metric else ()
    episodes = jax.device_get(jax.jit(lambda k: rollout(env, act, k, metric_names))(key))
    if metric_names:  # which episodes met the env's success rule (door: open on more than 25 steps)
        successes = np.asarray(episodes.successes(env))
        metadata = {**(metadata or {}), "successes": successes.tolist(), "success_rate": float(successes.mean())}
    lengths = episodes.valid.sum(axis=0).astype(np.int32)  # [N]
    # Time-major [T, N] -> episode after episode, keeping each episode's valid prefix.
    take = lambda x: np.concatenate([np.asarray(x)[: lengths[i], i] for i in range(env.num_envs)])  # noqa: E731
    terminals = take(episodes.terminated).astype(bool)
    truncations = np.zeros_like(terminals)
    ends = np.cumsum(lengths) - 1
    truncations[ends] = ~terminals[ends] & (lengths == env.episode_length)
    demos = Demonstrations(
        observations=take(episodes.observations).astype(np.float32),
        actions=take(episodes.actions).astype(np.float32),
        rewards=take(episodes.rewards).astype(np.float32),
        terminals=terminals,
        truncations=truncations,
        episode_ids=np.repeat(np.arange(env.num_envs, dtype=np.int32), lengths),
        episode_lengths=lengths,
        metadata={"env": env.name, "noise_std": float(noise_std), "episode_length": env.episode_length,
                  **(metadata or {})},
    )
    return validate(demos)
