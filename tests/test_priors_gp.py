"""The sparse GP against closed forms and an independent exact GP (tinygp), in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tinygp
from jax.extend import core as jax_core
from jax.scipy.linalg import solve_triangular

from kl_rl import priors
from kl_rl.priors import gp
from kl_rl.priors.kernels import KERNELS, correlation_kernel, kernel_matrix

RNG = np.random.default_rng(0)
X = RNG.uniform(-2.0, 2.0, size=(40, 3))  # [N, d]
Y = np.stack([np.sin(X[:, 0]) + 0.1 * RNG.standard_normal(40),
              np.cos(X[:, 1]) * X[:, 2] + 0.1 * RNG.standard_normal(40)], axis=1)  # [N, 2]
HYP = {"lengthscales": np.array([0.9, 1.3, 2.0]), "amp2": np.array([0.8, 1.5]), "noise2": np.array([0.02, 0.05]),
       "mean": np.array([0.1, -0.2])}


def _raw(hyp: dict, inducing: np.ndarray) -> dict:
    """Unconstrained parameters whose ``gp.constrain`` is ``hyp``."""
    return {"log_lengthscales": jnp.log(hyp["lengthscales"]), "log_amplitudes": 0.5 * jnp.log(hyp["amp2"]),
            "log_noise_stds": 0.5 * jnp.log(hyp["noise2"] - gp.MIN_NOISE_VAR), "mean": jnp.asarray(hyp["mean"]),
            "inducing": jnp.asarray(inducing)}


def _exact_gp(d: int, kernel: str, x: np.ndarray) -> tinygp.GaussianProcess:
    k = HYP["amp2"][d] * correlation_kernel(kernel, jnp.asarray(HYP["lengthscales"]))
    return tinygp.GaussianProcess(k, x, diag=HYP["noise2"][d], mean=HYP["mean"][d])


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_matrix_equals_tinygp(kernel):
    with jax.enable_x64(True):
        ls = jnp.asarray(HYP["lengthscales"])
        fast = kernel_matrix(kernel, ls, jnp.asarray(X), jnp.asarray(X[:7]))
        reference = correlation_kernel(kernel, ls)(jnp.asarray(X), jnp.asarray(X[:7]))
        np.testing.assert_allclose(fast, reference, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("kernel", ["rbf", "matern32"])
def test_posterior_with_inducing_at_inputs_equals_exact_gp(kernel):
    test_x = RNG.uniform(-3.0, 3.0, size=(25, 3))
    prior = gp.posterior({**HYP, "inducing": X}, X, Y, np.zeros(3), np.ones(3), kernel, jitter=1e-10,
                         dtype=np.float64)
    with jax.enable_x64(True):
        mean, std = gp.predict(prior, jnp.asarray(test_x))
        for d in range(2):
            cond = _exact_gp(d, kernel, X).condition(jnp.asarray(Y[:, d]), jnp.asarray(test_x)).gp
            np.testing.assert_allclose(mean[:, d], cond.loc, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(std[:, d] ** 2, cond.variance + HYP["noise2"][d], rtol=1e-6, atol=1e-7)


def test_collapsed_bound_equals_exact_evidence_at_inputs_and_bounds_it_otherwise():
    with jax.enable_x64(True):
        exact = sum(float(_exact_gp(d, "rbf", X).log_probability(jnp.asarray(Y[:, d]))) for d in range(2))
        at_inputs = float(gp.collapsed_bound(_raw(HYP, X), jnp.asarray(X), jnp.asarray(Y), "rbf", 1e-10))
        np.testing.assert_allclose(at_inputs, exact, rtol=1e-7)
        for m in (5, 15, 30):
            sparse = float(gp.collapsed_bound(_raw(HYP, X[:m]), jnp.asarray(X), jnp.asarray(Y), "rbf", 1e-10))
            assert sparse <= exact + 1e-8, (m, sparse, exact)


def test_svgp_elbo_at_optimal_q_equals_collapsed_bound():
    """For a Gaussian likelihood the optimal q(u) makes the (full-batch) SVGP ELBO equal
    Titsias' bound: checks both formulas against each other."""
    z = X[::3]
    with jax.enable_x64(True):
        raw = _raw(HYP, z)
        hyp = gp.constrain(raw)
        lc = jnp.linalg.cholesky(kernel_matrix("rbf", hyp["lengthscales"], z, z) + 1e-10 * jnp.eye(len(z)))
        a = solve_triangular(lc, kernel_matrix("rbf", hyp["lengthscales"], z, X), lower=True)  # [M, N]
        q_mean, q_sqrt = [], []
        for d in range(2):
            r = hyp["amp2"][d] / hyp["noise2"][d]
            cov = jnp.linalg.inv(jnp.eye(len(z)) + r * a @ a.T)
            q_mean.append(cov @ a @ (Y[:, d] - hyp["mean"][d]) * jnp.sqrt(hyp["amp2"][d]) / hyp["noise2"][d])
            q_sqrt.append(jnp.linalg.cholesky(cov))
        raw = {**raw, "q_mean": jnp.stack(q_mean, axis=1), "q_sqrt": jnp.stack(q_sqrt)}
        elbo = float(gp.svgp_elbo(raw, jnp.asarray(X), jnp.asarray(Y), len(X), "rbf", 1e-10))
        bound = float(gp.collapsed_bound(raw, jnp.asarray(X), jnp.asarray(Y), "rbf", 1e-10))
        np.testing.assert_allclose(elbo, bound, rtol=1e-8)


@pytest.fixture(scope="module")
def fitted_gp():
    """A small fitted GP on a 2-D toy problem (shared by the tests below)."""
    obs = RNG.uniform(-1.0, 1.0, size=(300, 2))
    act = np.stack([np.sin(3 * obs[:, 0]), obs[:, 1] ** 2], axis=1) + 0.05 * RNG.standard_normal((300, 2))
    prior, info = priors.fit_with_info("gp", jax.random.key(0), obs, act, num_inducing=32, steps=100,
                                       learning_rate=0.05)
    return prior, info, obs, act


def test_fit_improves_bound_and_predicts(fitted_gp):
    prior, info, obs, act = fitted_gp
    assert info["bound_trace"][-1] > info["bound_trace"][0]
    mean, std = jax.jit(priors.predict)(prior, jnp.asarray(obs, jnp.float32))
    assert float(jnp.sqrt(jnp.mean((mean - act) ** 2))) < 0.1
    np.testing.assert_allclose(jnp.mean(prior.noise_stds), 0.05, rtol=0.4)
    assert bool(jnp.all(std > 0))


def test_reported_bound_is_at_the_returned_parameters(fitted_gp):
    """``bound_per_point`` is Titsias' bound at the hyperparameters the prior holds, not the
    trace's last entry (taken before the last Adam step): three steps, in float64, so the two differ."""
    _, _, obs, act = fitted_gp
    prior, info = priors.fit_with_info("gp", jax.random.key(0), obs, act, num_inducing=16, steps=3,
                                       learning_rate=0.05, x64=True)
    hyp = {"lengthscales": np.asarray(prior.lengthscales), "amp2": np.asarray(prior.amplitudes) ** 2,
           "noise2": np.asarray(prior.noise_stds) ** 2, "mean": np.asarray(prior.mean_offsets)}
    with jax.enable_x64(True):
        x = (jnp.asarray(obs) - jnp.asarray(prior.obs_mean)) / jnp.asarray(prior.obs_scale)  # [N, 2] standardised
        bound = float(gp.collapsed_bound(_raw(hyp, prior.inducing), x, jnp.asarray(act), "rbf", gp.GPOptions().jitter))
    np.testing.assert_allclose(info["bound_per_point"], bound / len(obs), rtol=1e-6)
    assert abs(info["bound_trace"][-1] / len(obs) - info["bound_per_point"]) > 1e-3 * abs(info["bound_per_point"])


def test_std_grows_away_from_data_to_the_prior_std(fitted_gp):
    prior, _, obs, _ = fitted_gp
    near = priors.predict(prior, jnp.asarray(obs[:50], jnp.float32))[1]
    far_obs = jnp.asarray(obs[:50] + 50.0, jnp.float32)
    far = priors.predict(prior, far_obs)[1]
    limit = jnp.sqrt(prior.amplitudes**2 + prior.noise_stds**2)
    np.testing.assert_allclose(far, jnp.broadcast_to(limit, far.shape), rtol=1e-5)
    assert bool(jnp.all(jnp.mean(near, axis=0) < 0.5 * limit))


def test_svgp_option_fits_with_minibatches():
    obs = RNG.uniform(-1.0, 1.0, size=(400, 2))
    act = np.sin(3 * obs[:, :1]) + 0.05 * RNG.standard_normal((400, 1))
    prior, info = priors.fit_with_info("gp", jax.random.key(1), obs, act, method="svgp", num_inducing=24,
                                       batch_size=64, steps=300, learning_rate=0.03, kernel="matern52")
    mean, std = priors.predict(prior, jnp.asarray(obs, jnp.float32))
    assert info["bound_trace"][-1] > info["bound_trace"][0]
    assert float(jnp.sqrt(jnp.mean((mean - act) ** 2))) < 0.15


def _dot_precisions(closed: jax_core.ClosedJaxpr) -> list:
    """The precision of every matrix product in a jaxpr, nested programs (jit, scan) included."""
    found = []

    def walk(jaxpr: jax_core.Jaxpr) -> None:
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(eqn.params["precision"])
            for value in eqn.params.values():
                for sub in value if isinstance(value, tuple | list) else (value,):
                    if isinstance(sub, jax_core.ClosedJaxpr):
                        walk(sub.jaxpr)
                    elif isinstance(sub, jax_core.Jaxpr):
                        walk(sub)

    walk(closed.jaxpr)
    return found


@pytest.mark.parametrize("method", ["sgpr", "svgp"])
def test_fit_and_predict_use_full_precision_matrix_products(fitted_gp, method):
    """GPUs run float32 matrix products as TF32 by default; on an H100 that made the fit diverge
    (kernel matrices lost positive definiteness) and would blur 1 - explained in predict. Every
    product of the fit and of predict must ask for HIGHEST precision."""
    prior = fitted_gp[0]
    highest = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
    obs = jnp.zeros((4, prior.obs_mean.shape[0]), jnp.float32)
    predict_dots = _dot_precisions(jax.make_jaxpr(gp.predict)(prior, obs))
    options = priors.options_for("gp", num_inducing=8, steps=2, method=method, batch_size=16)
    x = jnp.asarray(X, jnp.float32)
    y = jnp.asarray(Y, jnp.float32)
    raw0 = {k: jnp.asarray(v, jnp.float32) for k, v in _raw(HYP, X[:8]).items()}
    if method == "svgp":
        raw0["q_mean"] = jnp.zeros((8, 2), jnp.float32)
        raw0["q_sqrt"] = jnp.tile(jnp.eye(8, dtype=jnp.float32), (2, 1, 1))
    fit_dots = _dot_precisions(jax.make_jaxpr(lambda key: gp._optimise(key, raw0, x, y, options))(jax.random.key(0)))
    assert predict_dots and fit_dots
    assert all(p == highest for p in predict_dots + fit_dots), set(map(str, predict_dots + fit_dots))
