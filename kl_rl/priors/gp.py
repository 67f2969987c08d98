"""Sparse Gaussian-process behavioral prior (N-PPAC's pi0) on tinygp kernels.

One GP per action dimension, all sharing the ARD lengthscales and the M inducing inputs Z, each
with its own amplitude a_d, noise std sigma_d and constant mean m_d:

    a_d(s) ~ m_d + f_d(s) + eps,   f_d ~ GP(0, a_d^2 k(s, s')),   eps ~ N(0, sigma_d^2)

Hyperparameters and Z are fitted with optax on Titsias' collapsed bound (SGPR, full batch) or,
for sets too large for that, on the minibatch ELBO of Hensman et al. (SVGP). Either way the
posterior kept for prediction is the optimal q(u) for the fitted hyperparameters (the maximiser
of both bounds for a Gaussian likelihood), accumulated over the data in chunks.

Because the outputs share k and Z, the posterior of every output is diagonal in one basis. With
Lc = chol(Kuu), A = Lc^-1 Kuf, G = A A^T = V diag(g) V^T and r_d = a_d^2 / sigma_d^2:

    mean_d(s) = m_d + k(s, Z) W[:, d],          W[:, d] = r_d T diag(1 / (1 + r_d g)) V^T A y_d
    var_d(s)  = a_d^2 (1 - sum_i (k(s, Z) T)_i^2 r_d g_i / (1 + r_d g_i)) + sigma_d^2

with T = Lc^-T V. So prediction is a kernel row against Z and two matmuls, and far from the
data k(s, Z) -> 0 gives std -> sqrt(a_d^2 + sigma_d^2).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.scipy.linalg import solve_triangular

from kl_rl.priors.base import LOG_2PI, PriorError, standardize, standardizer
from kl_rl.priors.kernels import KERNELS, kernel_matrix
from kl_rl.priors.registry import PriorKind, register

MIN_NOISE_VAR = 1e-6


@dataclasses.dataclass(frozen=True)
class GPOptions:
    """Options of the sparse GP prior."""

    kernel: str = "rbf"
    """Correlation kernel: rbf, matern12, matern32 or matern52 (ARD lengthscales)."""
    num_inducing: int = 512
    """Inducing points M, initialised from distinct demonstration states (capped at N)."""
    method: str = "sgpr"
    """'sgpr': full-batch collapsed bound; 'svgp': minibatch ELBO for large demonstration sets."""
    steps: int = 150
    """Adam steps on the bound."""
    learning_rate: float = 0.03
    batch_size: int = 1024
    """Minibatch size of 'svgp' (unused by 'sgpr')."""
    jitter: float = 1e-5
    """Added to the diagonal of the inducing-point kernel matrix before its Cholesky."""
    x64: bool = False
    """Fit in float64 (slower on CPU; the posterior is always computed in float64)."""
    learn_inducing: bool = True
    """Move the inducing inputs with the hyperparameters (False keeps the initial states)."""
    fit_points: int = 4096
    """'sgpr' fits the hyperparameters on a random subset of this many states (0: all); the
    posterior then uses every state. Each bound evaluation costs O(M^2 * points)."""

    def validate(self) -> None:
        if self.kernel not in KERNELS:
            raise PriorError(f"unknown kernel '{self.kernel}'; choose one of {', '.join(KERNELS)}")
        if self.method not in ("sgpr", "svgp"):
            raise PriorError(f"unknown GP method '{self.method}'; choose sgpr or svgp")
        if self.fit_points < 0:
            raise PriorError(f"fit_points must be >= 0 (0: all), got {self.fit_points}")
        for name in ("num_inducing", "batch_size"):
            if getattr(self, name) < 1:
                raise PriorError(f"{name} must be positive, got {getattr(self, name)}")
        if self.steps < 0:
            raise PriorError(f"steps must be >= 0, got {self.steps}")
        if not self.jitter > 0:
            raise PriorError(f"jitter must be positive, got {self.jitter}")


@struct.dataclass
class GPPrior:
    """A fitted sparse GP, ready to predict (see the module docstring for the formulas)."""

    obs_mean: jax.Array  # [obs_dim]
    obs_scale: jax.Array  # [obs_dim]
    lengthscales: jax.Array  # [obs_dim] in standardised units
    amplitudes: jax.Array  # [act_dim] a_d
    noise_stds: jax.Array  # [act_dim] sigma_d
    mean_offsets: jax.Array  # [act_dim] m_d
    inducing: jax.Array  # [M, obs_dim] standardised inducing inputs Z
    mean_weights: jax.Array  # [M, act_dim] W
    var_basis: jax.Array  # [M, M] T = Lc^-T V
    var_weights: jax.Array  # [M, act_dim] r_d g_i / (1 + r_d g_i)
    kernel: str = struct.field(pytree_node=False, default="rbf")
    kind: str = struct.field(pytree_node=False, default="gp")


def predict(prior: GPPrior, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Predictive mean and std (observation noise included): [B, obs_dim] -> 2 x [B, act_dim].

    Matrix products run at full float32 precision: GPUs would otherwise use TF32 (10-bit
    mantissa), and ``1 - explained`` near the data would lose most of its digits."""
    x = standardize(observations, prior.obs_mean, prior.obs_scale)  # [B, d]
    k = kernel_matrix(prior.kernel, prior.lengthscales, x, prior.inducing)  # [B, M]
    with jax.default_matmul_precision("highest"):
        mean = prior.mean_offsets + k @ prior.mean_weights  # [B, D]
        h = k @ prior.var_basis  # [B, M]
        explained = (h * h) @ prior.var_weights  # [B, D], in [0, 1]
    latent_var = prior.amplitudes**2 * jnp.clip(1.0 - explained, 0.0, 1.0)
    return mean, jnp.sqrt(latent_var + prior.noise_stds**2)


# ----------------------------------------------------------------------------- hyperparameters


def constrain(raw: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return {
        "lengthscales": jnp.exp(raw["log_lengthscales"]),
        "amp2": jnp.exp(2.0 * raw["log_amplitudes"]),
        "noise2": jnp.exp(2.0 * raw["log_noise_stds"]) + MIN_NOISE_VAR,
        "mean": raw["mean"],
        "inducing": raw["inducing"],
    }


def _inducing_cholesky(kernel: str, hyp: dict[str, jax.Array], jitter: float) -> jax.Array:
    z = hyp["inducing"]
    kuu = kernel_matrix(kernel, hyp["lengthscales"], z, z)
    return jnp.linalg.cholesky(kuu + jitter * jnp.eye(z.shape[0], dtype=z.dtype))  # [M, M]


def collapsed_bound(raw: dict[str, jax.Array], x: jax.Array, y: jax.Array, kernel: str,
                    jitter: float) -> jax.Array:
    """Titsias' collapsed evidence lower bound, summed over the action dimensions.

    x: [N, d] standardised states, y: [N, D] actions. For each output (GPflow's SGPR form)
    log N(y | m, Qff + s^2 I) - tr(Kff - Qff) / (2 s^2), with Qff = Kfu Kuu^-1 Kuf.
    """
    hyp = constrain(raw)
    n = x.shape[0]
    lc = _inducing_cholesky(kernel, hyp, jitter)  # [M, M]
    kuf = kernel_matrix(kernel, hyp["lengthscales"], hyp["inducing"], x)  # [M, N]
    a = solve_triangular(lc, kuf, lower=True)  # [M, N]
    g = a @ a.T  # [M, M]
    yc = y - hyp["mean"]  # [N, D]
    ay = a @ yc  # [M, D]
    yy = jnp.sum(yc * yc, axis=0)  # [D]
    trace_g = jnp.trace(g)
    eye = jnp.eye(g.shape[0], dtype=g.dtype)

    def one_output(amp2, noise2, ay_d, yy_d):
        r = amp2 / noise2
        lb = jnp.linalg.cholesky(eye + r * g)
        c = solve_triangular(lb, ay_d, lower=True) * jnp.sqrt(r / noise2)
        return (-0.5 * n * (LOG_2PI + jnp.log(noise2)) - jnp.sum(jnp.log(jnp.diag(lb)))
                - 0.5 * yy_d / noise2 + 0.5 * c @ c - 0.5 * n * amp2 / noise2 + 0.5 * r * trace_g)

    return jnp.sum(jax.vmap(one_output)(hyp["amp2"], hyp["noise2"], ay.T, yy))


def svgp_elbo(raw: dict[str, jax.Array], x: jax.Array, y: jax.Array, num_data: int, kernel: str,
              jitter: float) -> jax.Array:
    """Minibatch ELBO of the whitened SVGP, summed over outputs (an unbiased estimate of the
    full-data ELBO). ``raw`` also holds q(v) = N(mu, S S^T): mu [M, D], S [D, M, M] lower."""
    hyp = constrain(raw)
    lc = _inducing_cholesky(kernel, hyp, jitter)
    kuf = kernel_matrix(kernel, hyp["lengthscales"], hyp["inducing"], x)  # [M, b]
    h = solve_triangular(lc, kuf, lower=True)  # [M, b]
    mu = raw["q_mean"]  # [M, D]
    s = jnp.tril(raw["q_sqrt"])  # [D, M, M]
    amp = jnp.sqrt(hyp["amp2"])
    f_mean = (h.T @ mu) * amp  # [b, D]
    sh = jnp.einsum("dji,jb->dib", s, h)  # [D, M, b]: S^T h
    f_var = hyp["amp2"] * (1.0 - jnp.sum(h * h, axis=0)[:, None] + jnp.sum(sh * sh, axis=1).T)  # [b, D]
    resid = y - hyp["mean"] - f_mean
    ell = -0.5 * (LOG_2PI + jnp.log(hyp["noise2"])) - 0.5 * (resid**2 + f_var) / hyp["noise2"]
    diag = jnp.diagonal(s, axis1=1, axis2=2)  # [D, M]
    kl = 0.5 * (jnp.sum(s * s) + jnp.sum(mu * mu) - mu.size - jnp.sum(jnp.log(diag**2)))
    return jnp.sum(ell) * (num_data / x.shape[0]) - kl


# ----------------------------------------------------------------------------- fitting


def fit(key: jax.Array, observations: np.ndarray, actions: np.ndarray,
        options: GPOptions) -> tuple[GPPrior, dict[str, Any]]:
    """Fits hyperparameters and inducing inputs, then precomputes the posterior.

    observations [N, obs_dim], actions [N, act_dim] (host arrays, already checked).
    Returns the prior and a record of the fit (bound trace, wall time).
    """
    start = time.perf_counter()
    obs_mean, obs_scale = standardizer(observations)
    x = ((observations - obs_mean) / obs_scale)  # [N, d] float64
    y = actions
    n, d = x.shape
    act_dim = y.shape[1]
    key_z, key_subset, key_fit = jax.random.split(key, 3)
    num_inducing = min(options.num_inducing, n)
    z0 = _initial_inducing(key_z, x, num_inducing)
    x_fit, y_fit = x, y
    if options.method == "sgpr" and 0 < options.fit_points < n:
        subset = np.sort(np.asarray(jax.random.choice(key_subset, n, (options.fit_points,), replace=False)))
        x_fit, y_fit = x[subset], y[subset]
    amp0 = np.maximum(y.std(axis=0), 0.05)
    raw0 = {
        "log_lengthscales": np.full((d,), 0.5 * np.log(d)),  # sqrt(d) in standardised units
        "log_amplitudes": np.log(amp0),
        "log_noise_stds": np.log(0.3 * amp0),
        "mean": y.mean(axis=0),
        "inducing": z0,
    }
    if options.method == "svgp":
        raw0["q_mean"] = np.zeros((num_inducing, act_dim))
        raw0["q_sqrt"] = np.tile(np.eye(num_inducing), (act_dim, 1, 1))

    with jax.enable_x64(options.x64):
        dtype = jnp.float64 if options.x64 else jnp.float32
        raw0 = jax.tree.map(lambda v: jnp.asarray(v, dtype), raw0)
        raw, trace = _optimise(key_fit, raw0, jnp.asarray(x_fit, dtype), jnp.asarray(y_fit, dtype), options)
        raw = jax.device_get(raw)
        trace = np.asarray(trace)
    if not np.isfinite(trace).all() or not all(np.isfinite(v).all() for v in jax.tree.leaves(raw)):
        raise PriorError("the GP fit diverged (non-finite bound); try --x64, a larger jitter or a smaller "
                         "learning rate")
    prior = posterior(constrain(raw), x, y, obs_mean, obs_scale, options.kernel, options.jitter,
                      dtype=np.float64 if options.x64 else np.float32)
    per_point = final_bound(raw, x_fit, y_fit, options) / x_fit.shape[0]
    info = {"bound_trace": trace.tolist(), "bound_per_point": per_point, "num_inducing": num_inducing,
            "num_points": n, "fit_points": int(x_fit.shape[0]), "fit_seconds": time.perf_counter() - start}
    return prior, info


def final_bound(raw: dict[str, Any], x: np.ndarray, y: np.ndarray, options: GPOptions) -> float:
    """The bound at the returned parameters ``raw`` (the trace's last entry is the one before the
    last Adam step), in float64 on the points it was fitted to: Titsias' collapsed bound for sgpr,
    the full-data ELBO (no minibatch noise) for svgp."""
    with jax.enable_x64(True), jax.default_matmul_precision("highest"):
        raw = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), raw)
        x, y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        if options.method == "sgpr":
            return float(collapsed_bound(raw, x, y, options.kernel, options.jitter))
        return float(svgp_elbo(raw, x, y, x.shape[0], options.kernel, options.jitter))


def _initial_inducing(key: jax.Array, x: np.ndarray, m: int) -> np.ndarray:
    """M distinct demonstration states (random subset), so the inducing inputs start on the data."""
    unique = np.unique(x, axis=0)
    if unique.shape[0] < m:
        raise PriorError(f"only {unique.shape[0]} distinct states for {m} inducing points; "
                         "lower num_inducing or give more demonstrations")
    idx = np.asarray(jax.random.choice(key, unique.shape[0], (m,), replace=False))
    return unique[np.sort(idx)]


def _optimise(key: jax.Array, raw0: dict[str, jax.Array], x: jax.Array, y: jax.Array,
              options: GPOptions) -> tuple[dict[str, jax.Array], jax.Array]:
    """Adam on the negative bound, all steps in one jitted scan. Returns the parameters and the
    bound after each step."""
    tx = optax.adam(options.learning_rate)
    n = x.shape[0]
    frozen = () if options.learn_inducing else ("inducing",)

    def objective(raw, key_step):
        if options.method == "sgpr":
            return -collapsed_bound(raw, x, y, options.kernel, options.jitter)
        idx = jax.random.choice(key_step, n, (min(options.batch_size, n),), replace=False)
        return -svgp_elbo(raw, x[idx], y[idx], n, options.kernel, options.jitter)

    def step(carry, key_step):
        raw, opt_state = carry
        loss, grads = jax.value_and_grad(objective)(raw, key_step)
        grads = {k: (jnp.zeros_like(v) if k in frozen else v) for k, v in grads.items()}
        updates, opt_state = tx.update(grads, opt_state, raw)
        return (optax.apply_updates(raw, updates), opt_state), -loss

    @jax.jit
    def run(raw, key):
        (raw, _), trace = jax.lax.scan(step, (raw, tx.init(raw)), jax.random.split(key, options.steps))
        return raw, trace

    # Full float32 matrix products: with a GPU's default TF32 the kernel matrices lose positive
    # definiteness and the fit diverges (seen on an H100 for walker2d and ant).
    with jax.default_matmul_precision("highest"):
        return run(raw0, key)


def posterior(hyp: dict[str, Any], x: np.ndarray, y: np.ndarray, obs_mean: np.ndarray, obs_scale: np.ndarray,
              kernel: str, jitter: float, dtype: Any = np.float32, chunk: int = 4096) -> GPPrior:
    """The optimal q(u) for fixed (constrained) hyperparameters ``hyp``, computed in float64 and
    accumulated over chunks of the data so memory stays O(M^2 + M * chunk); then the prediction
    basis of the module docstring. x: [N, d] standardised states, y: [N, D] actions."""
    with jax.enable_x64(True):
        hyp = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), hyp)
        lc = _inducing_cholesky(kernel, hyp, jitter)
        m = lc.shape[0]
        g = jnp.zeros((m, m), jnp.float64)
        ay = jnp.zeros((m, y.shape[1]), jnp.float64)
        yc = jnp.asarray(y, jnp.float64) - hyp["mean"]
        for lo in range(0, x.shape[0], chunk):
            kuf = kernel_matrix(kernel, hyp["lengthscales"], hyp["inducing"], jnp.asarray(x[lo:lo + chunk]))
            a = solve_triangular(lc, kuf, lower=True)  # [M, chunk]
            g = g + a @ a.T
            ay = ay + a @ yc[lo:lo + chunk]
        evals, evecs = jnp.linalg.eigh(g)
        evals = jnp.clip(evals, 0.0, None)  # [M]
        basis = solve_triangular(lc.T, evecs, lower=False)  # [M, M] T = Lc^-T V
        r = hyp["amp2"] / hyp["noise2"]  # [D]
        shrink = 1.0 / (1.0 + r[None, :] * evals[:, None])  # [M, D]
        mean_weights = basis @ (r[None, :] * shrink * (evecs.T @ ay))  # [M, D]
        var_weights = r[None, :] * evals[:, None] * shrink  # [M, D]
        cast = lambda v: np.asarray(v, dtype)  # noqa: E731
        prior = GPPrior(
            obs_mean=cast(obs_mean), obs_scale=cast(obs_scale), lengthscales=cast(hyp["lengthscales"]),
            amplitudes=cast(jnp.sqrt(hyp["amp2"])), noise_stds=cast(jnp.sqrt(hyp["noise2"])),
            mean_offsets=cast(hyp["mean"]), inducing=cast(hyp["inducing"]), mean_weights=cast(mean_weights),
            var_basis=cast(basis), var_weights=cast(var_weights), kernel=kernel)
    chex.assert_tree_all_finite(prior)
    return prior


register(PriorKind("gp", GPOptions, GPPrior, fit, predict,
                   flags={"kernel": "kernel", "num_inducing": "num_inducing", "gp_method": "method",
                          "gp_steps": "steps", "fit_points": "fit_points", "x64": "x64"}))
