"""Demonstrations in DAPG's format (hand_dapg's ``door-v0_demos.pickle``) converted to kl_rl's.

DAPG stores a pickled list of episodes, each a dict with ``observations`` [T, 39], ``actions``
[T, 28], ``rewards`` [T] (door-v0's shaped reward) and ``init_state_dict``. A pickle can run
arbitrary code when loaded, so this module reads it with an unpickler that admits only numpy
arrays and dtypes besides plain containers; a file that asks for anything else is refused
before any of it is built.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from kl_rl.demos import Demonstrations, DemosError, validate

# (module, name) pairs a DAPG pickle may name: numpy's array and scalar rebuilders and types.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise DemosError(f"refusing to load {module}.{name} from the pickle: only numpy arrays and plain "
                             "containers are read (a pickle naming other classes can run code)")
        from numpy._core import multiarray

        return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar, "ndarray": np.ndarray,
                "dtype": np.dtype}[name]


def read_pickle(path: Path) -> Any:
    """The pickle's contents, built from numpy arrays, dtypes and plain containers only."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except DemosError:
        raise
    except FileNotFoundError:
        raise DemosError(f"no demonstrations file at {path}; check the path") from None
    except Exception as err:  # truncated or not a pickle at all
        raise DemosError(f"{path} is not a readable DAPG pickle ({type(err).__name__}: {err})") from None


def import_dapg(path: Path, obs_size: int = 39, action_size: int = 28) -> Demonstrations:
    """DAPG door episodes as kl_rl ``Demonstrations``: actions clipped into [-1, 1] (some human
    actions lie slightly outside), rewards recomputed as door-binary's (goal_achieved - 1, with
    the goal read from the hinge angle of the next observation; the last step of an episode has
    none, so its own is used), each episode's end a truncation (the human stopped; no MDP end),
    successes counted (goal on more than 25 steps), the source file's sha256 in the metadata."""
    from kl_rl.envs.door import GOAL_ANGLE, SUCCESS_STEPS

    path = Path(path)
    episodes = read_pickle(path)
    if not isinstance(episodes, list) or not episodes or not all(isinstance(e, dict) for e in episodes):
        raise DemosError(f"{path}: expected a list of episode dicts (DAPG's format), got {type(episodes).__name__}")
    obs_list, act_list, rewards, lengths, successes, clipped = [], [], [], [], [], 0
    for i, episode in enumerate(episodes):
        missing = [k for k in ("observations", "actions") if k not in episode]
        if missing:
            raise DemosError(f"{path}: episode {i} has no {', '.join(missing)}")
        obs = np.asarray(episode["observations"], np.float64)
        act = np.asarray(episode["actions"], np.float64)
        if obs.ndim != 2 or obs.shape[1] != obs_size or act.ndim != 2 or act.shape[1] != action_size \
                or act.shape[0] != obs.shape[0] or obs.shape[0] < 1:
            raise DemosError(f"{path}: episode {i} has observations {obs.shape} and actions {act.shape}; expected "
                             f"[T, {obs_size}] and [T, {action_size}] with the same T (the door task's dims)")
        hinge_next = np.append(obs[1:, 28], obs[-1, 28])  # [T] hinge angle after each step
        goal = hinge_next >= GOAL_ANGLE
        clipped += int((np.abs(act) > 1.0).sum())
        obs_list.append(obs)
        act_list.append(np.clip(act, -1.0, 1.0))
        rewards.append(goal.astype(np.float64) - 1.0)
        lengths.append(obs.shape[0])
        successes.append(bool(goal.sum() > SUCCESS_STEPS))
    lengths_arr = np.asarray(lengths, np.int32)
    steps = int(lengths_arr.sum())
    truncations = np.zeros(steps, bool)
    truncations[np.cumsum(lengths_arr) - 1] = True
    demos = Demonstrations(
        observations=np.concatenate(obs_list).astype(np.float32), actions=np.concatenate(act_list).astype(np.float32),
        rewards=np.concatenate(rewards).astype(np.float32), terminals=np.zeros(steps, bool), truncations=truncations,
        episode_ids=np.repeat(np.arange(len(lengths), dtype=np.int32), lengths_arr), episode_lengths=lengths_arr,
        metadata={"env": "door", "source": "dapg", "source_file": path.name,
                  "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                  "reward": "binary (goal_achieved - 1), recomputed from the observations",
                  "actions_clipped": clipped, "successes": [bool(s) for s in successes],
                  "success_rate": float(np.mean(successes))})
    return validate(demos, obs_size, action_size, source=str(path))
