"""Environment registry: ``make_env(name, num_envs)`` -> a vectorized episodic ``VecEnv``."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable

# mujoco.mjx prints "Failed to import warp" to stdout when the optional NVIDIA Warp backend is
# absent; we use the JAX backend, so keep that line out of the user's output.
with contextlib.redirect_stdout(io.StringIO()):
    from brax import envs as brax_envs
from brax.envs.base import Env  # noqa: E402

from kl_rl.envs.pointmass import PointMass  # noqa: E402
from kl_rl.envs.vec_env import StepOutput, VecEnv, VecEnvState  # noqa: E402

# Brax warns on every env build that its own pipelines are unmaintained; we use its MJX backend.
warnings.filterwarnings("ignore", message="Brax System, piplines and environments", category=UserWarning)


def _brax_mjx(name: str) -> Callable[[], Env]:
    return lambda: brax_envs.get_environment(name, backend="mjx")


# MuJoCo locomotion on MJX (brax envs, mjx backend), plus a toy task for tests and smoke runs.
_REGISTRY: dict[str, Callable[[], Env]] = {
    "halfcheetah": _brax_mjx("halfcheetah"),
    "hopper": _brax_mjx("hopper"),
    "walker2d": _brax_mjx("walker2d"),
    "ant": _brax_mjx("ant"),
    "pointmass": PointMass,
}

ENV_NAMES: tuple[str, ...] = tuple(sorted(_REGISTRY))


class UnknownEnvError(ValueError):
    """Raised for an environment name that is not in the registry."""


def check_env_name(name: str) -> str:
    """Returns ``name`` if it is registered, else raises a one-line ``UnknownEnvError``."""
    if name not in _REGISTRY:
        raise UnknownEnvError(f"unknown env {name!r}; choose one of: {', '.join(ENV_NAMES)}")
    return name


def make_env(name: str, num_envs: int, episode_length: int = 1000) -> VecEnv:
    """Builds ``num_envs`` copies of env ``name`` with auto-reset and a truncation flag."""
    check_env_name(name)
    return VecEnv(_REGISTRY[name](), name=name, num_envs=num_envs, episode_length=episode_length)


__all__ = [
    "ENV_NAMES", "StepOutput", "UnknownEnvError", "VecEnv", "VecEnvState", "check_env_name", "make_env",
]
