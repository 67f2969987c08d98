"""The KL-regularized objective (N-PPAC): the estimator against closed forms, the 1/sigma0^2
gradient growth of Proposition 1, pretraining, and tiny runs of every algo and prior."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_rl import losses
from kl_rl.config import HParams
from kl_rl.distributions import gaussian_log_prob, sample_tanh_gaussian
from kl_rl.loop import NonFiniteError, run
from kl_rl.train import Trainer


def _gaussian_kl(mu, sigma, mu0, sigma0):
    return np.sum(np.log(sigma0 / sigma) + (sigma**2 + (mu - mu0) ** 2) / (2 * sigma0**2) - 0.5)


def test_kl_estimator_matches_closed_form_gaussian_kl():
    mu, sigma = np.array([0.2, -0.5, 0.0]), np.array([0.3, 0.6, 0.2])
    mu0, sigma0 = np.array([0.0, -0.2, 0.1]), np.array([0.5, 0.4, 0.3])
    with jax.enable_x64(True):
        x = mu + sigma * jax.random.normal(jax.random.key(0), (400_000, 3), jnp.float64)
        estimate = losses.kl_estimate(gaussian_log_prob(x, mu, jnp.log(sigma)),
                                      losses.prior_log_prob(x, jnp.asarray(mu0), jnp.asarray(sigma0)))
        standard_error = float(jnp.std(estimate)) / np.sqrt(estimate.shape[0])
        np.testing.assert_allclose(float(jnp.mean(estimate)), _gaussian_kl(mu, sigma, mu0, sigma0),
                                   atol=4 * standard_error)
        assert standard_error < 0.01


def test_kl_estimate_is_zero_when_pi_equals_pi0():
    mu, sigma = jnp.array([[0.3, -0.1]]), jnp.array([[0.2, 0.5]])
    x = mu + sigma * jax.random.normal(jax.random.key(1), (1000, 2))
    kl = losses.kl_estimate(gaussian_log_prob(x, mu, jnp.log(sigma)), losses.prior_log_prob(x, mu, sigma))
    np.testing.assert_allclose(kl, 0.0, atol=1e-5)


def test_kl_gradient_grows_like_inverse_prior_variance():
    """Proposition 1, measured: the gradient of the one-sample KL term (tanh-Gaussian pi, as in
    training) w.r.t. the policy mean scales like 1 / sigma0^2 as the prior std shrinks."""
    mean, log_std = jnp.full((4096, 2), 0.3), jnp.full((4096, 2), jnp.log(0.2))
    key = jax.random.key(2)

    def kl_term(mean, sigma0):
        action, log_prob = sample_tanh_gaussian(key, mean, log_std)
        return jnp.mean(losses.kl_estimate(log_prob, losses.prior_log_prob(action, jnp.zeros(2), sigma0)))

    sigma0s = np.array([0.2, 0.1, 0.05, 0.025])
    norms = np.array([float(jnp.linalg.norm(jax.grad(kl_term)(mean, jnp.full(2, s)))) for s in sigma0s])
    slope = np.polyfit(np.log(sigma0s), np.log(norms), 1)[0]
    assert -2.1 < slope < -1.9, (slope, norms)


def test_log_box_mass_matches_scipy_and_stays_finite_far_outside_the_box():
    from scipy import stats

    mu0 = np.array([[0.0, 0.9, -1.1, 1.5, -3.0, 0.3]])
    std0 = np.array([[0.5, 0.1, 0.1, 0.05, 0.2, 2.0]])
    lo, hi = (-1 - mu0) / std0, (1 - mu0) / std0  # a mean below the box: its upper tail, where sf is exact
    mass = np.where(mu0 < 0, stats.norm.sf(lo) - stats.norm.sf(hi), stats.norm.cdf(hi) - stats.norm.cdf(lo))
    exact = np.sum(np.log(mass))
    with jax.enable_x64(True):
        np.testing.assert_allclose(float(losses.log_box_mass(jnp.asarray(mu0), jnp.asarray(std0))[0]), exact,
                                   rtol=1e-10)
    np.testing.assert_allclose(float(losses.log_box_mass(jnp.asarray(mu0, jnp.float32),
                                                         jnp.asarray(std0, jnp.float32))[0]), exact, rtol=1e-4)
    # 100 stds past the edge: a large finite log mass (Mills' ratio: -(100^2)/2 - log(100 sqrt(2 pi))), not -inf
    far = float(losses.log_box_mass(jnp.array([[-6.0]]), jnp.array([[0.05]]))[0])
    np.testing.assert_allclose(far, -0.5 * 100.0**2 - np.log(100.0 * np.sqrt(2 * np.pi)), rtol=1e-3)


def test_truncating_the_prior_removes_the_kl_floor_and_keeps_the_gradient():
    """pi0 with its mean on the box's edge: the tanh-squashed actor's KL to the untruncated pi0 stays
    above -log(mass in the box) = log 2 per dimension however closely it follows pi0; to the
    truncated pi0 it is the same estimate plus the log mass, and its action gradient is unchanged."""
    mu0, std0 = jnp.full((20_000, 2), 1.0), jnp.full((20_000, 2), 0.1)
    mean, log_std = jnp.full((20_000, 2), jnp.arctanh(0.9)), jnp.full((20_000, 2), jnp.log(0.6))
    action, log_prob = sample_tanh_gaussian(jax.random.key(3), mean, log_std)
    kl_plain = losses.kl_estimate(log_prob, losses.prior_log_prob(action, mu0, std0))
    kl_trunc = losses.kl_estimate(log_prob, losses.truncated_prior_log_prob(action, mu0, std0))
    assert float(jnp.mean(kl_plain)) > 2 * np.log(2.0)
    np.testing.assert_allclose(kl_trunc - kl_plain, 2 * np.log(0.5), rtol=1e-5)
    grads = [jax.grad(lambda a, f=f: jnp.sum(f(a, mu0, std0)))(action)
             for f in (losses.prior_log_prob, losses.truncated_prior_log_prob)]
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)


def _pretraining_kl(cfg, prior, demos, hparams, **change) -> float:
    """The KL of one pretraining pass of the nppac config with ``change``, from the same key."""
    trainer = Trainer(dataclasses.replace(cfg, pretrain_epochs=1, **change))
    state = jax.jit(trainer.init)(jax.random.key(0), hparams, prior)
    _, kl = jax.jit(trainer.pretrain)(state, hparams, jnp.asarray(demos.observations), jnp.asarray(demos.actions))
    return float(kl[0])


def test_truncated_prior_option_lowers_the_pretraining_kl(nppac_cfg, pointmass_priors, pointmass_demos, hparams):
    """--prior-truncated reaches the trainer: the same pass (same samples: the actor's gradient
    does not change) reports a KL lower by the prior's mean log mass outside the box."""
    from kl_rl import priors

    plain, truncated = (_pretraining_kl(nppac_cfg, pointmass_priors["gp"], pointmass_demos, hparams,
                                        prior_truncated=flag) for flag in (False, True))
    mean0, std0 = priors.predict(pointmass_priors["gp"], jnp.asarray(pointmass_demos.observations))
    outside = -float(jnp.mean(losses.log_box_mass(mean0, std0)))  # the pass sees all but a remainder
    assert outside > 0.0 and truncated < plain
    np.testing.assert_allclose(plain - truncated, outside, rtol=0.2)


@pytest.fixture(scope="module")
def nppac_cfg(tiny_cfg):
    return dataclasses.replace(tiny_cfg, algo="nppac", pretrain_epochs=20, pretrain_batch_size=16, critic_warmup=0)


def test_pretraining_reduces_the_kl(nppac_cfg, pointmass_priors, pointmass_demos):
    hparams = HParams.create(actor_lr=3e-3)  # a few hundred steps here instead of the reference's ~1e5
    trainer = Trainer(nppac_cfg)
    state = jax.jit(trainer.init)(jax.random.key(0), hparams, pointmass_priors["gp"])
    demo = (jnp.asarray(pointmass_demos.observations), jnp.asarray(pointmass_demos.actions))
    state, kl = jax.jit(trainer.pretrain)(state, hparams, *demo)
    assert kl.shape == (20,)
    assert float(kl[-3:].mean()) < 0.5 * float(kl[0]), kl


def test_behavior_cloning_pretraining_reduces_the_nll(tiny_cfg, pointmass_demos):
    hparams = HParams.create(actor_lr=3e-3)
    trainer = Trainer(dataclasses.replace(tiny_cfg, algo="bc-sac", pretrain_epochs=20, pretrain_batch_size=16))
    state = jax.jit(trainer.init)(jax.random.key(0), hparams)
    _, nll = jax.jit(trainer.pretrain)(state, hparams, jnp.asarray(pointmass_demos.observations),
                                       jnp.asarray(pointmass_demos.actions))
    assert float(nll[-3:].mean()) < float(nll[0]) - 1.0, nll


def test_nppac_jitted_and_vmapped_over_two_seeds(nppac_cfg, pointmass_priors, hparams):
    trainer = Trainer(nppac_cfg)
    keys = jax.vmap(jax.random.key)(np.arange(2))
    both = jax.tree.map(lambda x: np.stack([x, x]), hparams)
    state = jax.jit(jax.vmap(trainer.init, in_axes=(0, 0, None)))(keys, both, pointmass_priors["gp"])
    epoch = jax.jit(jax.vmap(trainer.epoch))
    for _ in range(2):
        state, metrics = epoch(state, both)
    metrics = jax.device_get(metrics)
    for name in ("critic_loss", "actor_loss", "kl_mean", "kl_max", "prior_std_mean", "prior_std_min",
                 "actor_grad_norm", "critic_grad_norm", "q_mean"):
        assert metrics[name].shape == (2,) and np.isfinite(metrics[name]).all(), name
    assert (metrics["kl_max"] >= metrics["kl_mean"]).all()
    assert (metrics["prior_std_min"] <= metrics["prior_std_mean"]).all()
    np.testing.assert_allclose(metrics["alpha"], float(hparams.alpha), rtol=1e-6)  # fixed, not tuned
    assert not np.allclose(metrics["critic_loss"][0], metrics["critic_loss"][1])


@pytest.mark.parametrize("kind", ["mlp", "ensemble", "dropout", "floor"])
def test_kl_runs_with_every_prior(tiny_cfg, pointmass_priors, pointmass_demos, hparams, kind):
    cfg = dataclasses.replace(tiny_cfg, algo="kl", prior=kind, total_steps=128, pretrain_epochs=1)
    demos = (np.asarray(pointmass_demos.observations), np.asarray(pointmass_demos.actions))
    result = run(cfg, hparams, 0, eval_every=128, progress=False, prior=pointmass_priors[kind], demos=demos)
    last = result.rows[-1]
    assert np.isfinite([last["kl_mean"], last["critic_loss"], last["eval_return"]]).all()


def test_prior_variance_mixup_option_changes_the_kl(nppac_cfg, pointmass_priors, pointmass_demos, hparams):
    """The reference's variance-as-std option gives a different (larger, std < 1) KL penalty."""
    kls = [_pretraining_kl(nppac_cfg, pointmass_priors["gp"], pointmass_demos, hparams, prior_scale_is_variance=mixup)
           for mixup in (False, True)]
    assert kls[1] > kls[0] + 1.0, kls


def test_non_finite_loss_stops_with_the_epoch_named(tiny_cfg, tmp_path):
    bad = HParams.create(critic_lr=float("nan"))
    with pytest.raises(NonFiniteError, match=r"^epoch 1: critic_loss is nan") as err:
        run(tiny_cfg, bad, 0, run_dir=tmp_path / "run", eval_every=64, progress=False, tensorboard=False)
    assert "\n" not in str(err.value)
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2  # the step-0 evaluation and the failing epoch are kept
    from kl_rl import checkpoint

    assert checkpoint.latest_epoch(tmp_path / "run") == 0  # the last good checkpoint, untouched by the fault


def test_prior_stored_in_buffer_gives_the_same_training(nppac_cfg, pointmass_priors, hparams):
    """pi0 is fixed, so storing its moments with each transition must not change the run."""
    results = []
    for stored in (True, False):
        trainer = Trainer(dataclasses.replace(nppac_cfg, prior_in_buffer=stored))
        state = jax.jit(trainer.init)(jax.random.key(3), hparams, pointmass_priors["gp"])
        assert (state.buffer.data.prior is not None) == stored
        epoch = jax.jit(trainer.epoch)
        for _ in range(2):
            state, metrics = epoch(state, hparams)
        results.append(jax.device_get(metrics))
    for name in ("critic_loss", "actor_loss", "kl_mean", "prior_std_min", "q_mean"):
        np.testing.assert_allclose(results[0][name], results[1][name], rtol=2e-4, err_msg=name)
