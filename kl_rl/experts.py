"""Experts: SAC policies trained by this project, saved as a run folder and loaded back.

An expert folder is a ``kl-rl train`` run folder: ``config.json`` (the TrainConfig, hparams,
seed), ``params.msgpack`` (actor and critic parameters), ``summary.json`` (final deterministic
evaluation), metrics and a learning curve.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import serialization

from kl_rl.config import TrainConfig, config_from_json
from kl_rl.envs import make_env
from kl_rl.sac import SAC


class ExpertError(ValueError):
    """An expert folder is missing or incomplete."""


@dataclass(frozen=True)
class Expert:
    cfg: TrainConfig
    sac: SAC
    actor_params: Any
    summary: dict[str, Any]
    path: Path

    def policy(self) -> Callable[[jax.Array], jax.Array]:
        """The deterministic expert policy: obs [N, o] -> tanh(mean) [N, a]."""
        return lambda obs: self.sac.greedy_action(self.actor_params, obs)


def load_expert(path: str | Path) -> Expert:
    """Loads the actor of a finished training run folder."""
    path = Path(path)
    missing = [n for n in ("config.json", "params.msgpack", "summary.json") if not (path / n).exists()]
    if missing:
        raise ExpertError(f"{path} is not a finished kl-rl run folder (missing {', '.join(missing)}); "
                          "train one with `kl-rl train` or `kl-rl demos`")
    cfg = config_from_json(json.loads((path / "config.json").read_text())["config"]).validate()
    env = make_env(cfg.env, 1)
    sac = SAC(cfg, env.obs_size, env.action_size)
    raw = serialization.msgpack_restore((path / "params.msgpack").read_bytes())
    if set(raw) != {"actor", "critics"}:
        raise ExpertError(f"{path / 'params.msgpack'} does not hold actor and critic parameters")
    template_actor = sac.actor.init(jax.random.key(0), jnp.zeros((1, env.obs_size), jnp.float32))
    try:
        actor = serialization.from_state_dict(template_actor, raw["actor"])
        same = jax.tree.map(lambda a, b: a.shape == b.shape, template_actor, actor)
    except (ValueError, KeyError, TypeError) as err:
        raise ExpertError(f"{path / 'params.msgpack'} does not match its config.json ({err})") from None
    if not all(jax.tree.leaves(same)):
        raise ExpertError(f"{path / 'params.msgpack'} has actor shapes that do not match its config.json")
    summary = json.loads((path / "summary.json").read_text())
    return Expert(cfg=cfg, sac=sac, actor_params=actor, summary=summary, path=path)
