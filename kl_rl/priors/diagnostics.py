"""Diagnostics of fitted priors, the numbers behind the pathology (docs/method.md section 2):

- held-out fit: Gaussian NLL and RMSE on demonstration *episodes* left out of the fit;
- predictive std on the demonstration states and at growing distance from them (probes: demo
  states plus isotropic Gaussian offsets in standardised state units, with their Euclidean
  distance to the nearest demonstration state);
- a 2-D map of the predictive std over the first two principal components of the states;
- the return of the prior's mean action rolled out in the env.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kl_rl.priors import Prior, predict
from kl_rl.priors.base import gaussian_nll, standardizer

_PREDICT = jax.jit(predict)  # one compiled program per prior kind and batch shape, shared by every call
PROBE_SCALES: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
FAR_SCALE = 4.0  # the probe scale reported as "std far"


def batched_predict(prior: Prior, observations: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``predict`` over a large array in fixed-size batches (one compile): [N, o] -> 2 x [N, a]."""
    n = observations.shape[0]
    padded = np.concatenate([observations, np.repeat(observations[-1:], (-n) % batch, axis=0)]).astype(np.float32)
    means, stds = [], []
    for lo in range(0, padded.shape[0], batch):
        m, s = _PREDICT(prior, jnp.asarray(padded[lo:lo + batch]))
        means.append(np.asarray(m))
        stds.append(np.asarray(s))
    return np.concatenate(means)[:n], np.concatenate(stds)[:n]


def heldout_metrics(prior: Prior, observations: np.ndarray, actions: np.ndarray) -> dict[str, float]:
    """Mean per-step NLL (summed over action dimensions) and RMSE of the mean action."""
    mean, std = batched_predict(prior, observations)
    nll = gaussian_nll(actions.astype(np.float64), mean.astype(np.float64), std.astype(np.float64))
    return {"nll": float(np.mean(nll)), "rmse": float(np.sqrt(np.mean((mean - actions) ** 2)))}


def nearest_distances(points: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distance from each point to its nearest reference point: [P, d], [R, d] -> [P]."""
    ref_sq = np.sum(reference**2, axis=1)
    out = np.empty(points.shape[0])
    for lo in range(0, points.shape[0], chunk):
        p = points[lo:lo + chunk]
        d2 = np.sum(p**2, axis=1)[:, None] + ref_sq[None, :] - 2.0 * p @ reference.T
        out[lo:lo + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def distance_probes(key: jax.Array, demo_obs: np.ndarray, num_per_scale: int = 400,
                    scales: Sequence[float] = PROBE_SCALES) -> dict[str, np.ndarray]:
    """Probe states at growing distance from the demonstrations.

    For each scale s, ``num_per_scale`` demonstration states plus N(0, s^2 I) offsets in
    standardised units (each state dimension divided by its std over the demonstrations).
    Returns states [P, o] (raw units), their scale [P] and distance to the nearest
    demonstration state [P] (standardised units).
    """
    mean, scale = standardizer(demo_obs)
    z_demo = (demo_obs - mean) / scale
    key_pick, key_offset = jax.random.split(key)
    picks = np.asarray(jax.random.randint(key_pick, (len(scales), num_per_scale), 0, demo_obs.shape[0]))
    offsets = np.asarray(jax.random.normal(key_offset, (len(scales), num_per_scale, demo_obs.shape[1])))
    z = np.concatenate([z_demo[picks[i]] + s * offsets[i] for i, s in enumerate(scales)])
    return {"states": (z * scale + mean).astype(np.float32),
            "scale": np.repeat(np.asarray(scales, np.float64), num_per_scale),
            "distance": nearest_distances(z, z_demo)}


def std_by_scale(prior: Prior, probes: dict[str, np.ndarray]) -> dict[float, float]:
    """Mean predictive std (over action dims and probes) at each probe scale."""
    _, std = batched_predict(prior, probes["states"])
    per_probe = std.mean(axis=1)
    return {float(s): float(per_probe[probes["scale"] == s].mean()) for s in np.unique(probes["scale"])}


def pca_grid(demo_obs: np.ndarray, resolution: int = 60, margin: float = 0.5) -> dict[str, np.ndarray]:
    """A grid over the first two principal components of the standardised demonstration states,
    ``margin`` x their range wider on each side; grid states lie in that plane through the mean.
    Returns states [R*R, o], the grid axes [R] x 2 and the demos' projections [N, 2]."""
    mean, scale = standardizer(demo_obs)
    z = (demo_obs - mean) / scale
    _, _, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    components = vt[:2]  # [2, o]
    proj = (z - z.mean(axis=0)) @ components.T  # [N, 2]
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    span = hi - lo
    pc1 = np.linspace(lo[0] - margin * span[0], hi[0] + margin * span[0], resolution)
    pc2 = np.linspace(lo[1] - margin * span[1], hi[1] + margin * span[1], resolution)
    g1, g2 = np.meshgrid(pc1, pc2)
    grid_z = z.mean(axis=0) + np.stack([g1.ravel(), g2.ravel()], axis=1) @ components
    return {"states": (grid_z * scale + mean).astype(np.float32), "pc1": pc1, "pc2": pc2, "demo_proj": proj}


def mean_action_return(prior: Prior, env_name: str, episodes: int, episode_length: int,
                       key: jax.Array) -> dict[str, Any]:
    """Deterministic return of a = clip(mu0(s), -1, 1) over ``episodes`` episodes in the env, and
    on an env with a success rule (door) the share of episodes that succeed."""
    from kl_rl.envs import make_env
    from kl_rl.rollout import rollout

    env = make_env(env_name, episodes, episode_length)
    names = (env.success_metric,) if env.success_metric else ()

    def act(obs, _key):
        return jnp.clip(predict(prior, obs)[0], -1.0, 1.0)

    def returns_and_successes(k):
        episodes_ = rollout(env, act, k, names)
        return episodes_.returns, episodes_.successes(env) if names else jnp.zeros(0)

    returns, successes = map(np.asarray, jax.jit(returns_and_successes)(key))
    out = {"mean": float(returns.mean()), "min": float(returns.min()), "max": float(returns.max())}
    return {**out, "success": float(successes.mean())} if names else out
