"""The parametric priors on a 1-D heteroscedastic toy problem, the shared interface, storage
and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_rl import priors
from kl_rl.priors import PriorError

RNG = np.random.default_rng(0)
TOY_X = RNG.uniform(-1.0, 1.0, size=(2000, 1))  # [N, 1]
TOY_STD = 0.02 + 0.3 * np.abs(TOY_X[:, 0])  # noise grows with |x|
TOY_Y = (np.sin(3.0 * TOY_X[:, 0]) * 0.5 + TOY_STD * RNG.standard_normal(2000))[:, None]  # [N, 1]
SMALL = {"hidden_sizes": (32, 32), "steps": 2000, "learning_rate": 3e-3}
KIND_OPTIONS = {
    "mlp": SMALL,
    "floor": {**SMALL, "min_std": 0.1},
    "ensemble": {**SMALL, "num_members": 3},
    "dropout": {**SMALL, "dropout_rate": 0.05, "num_passes": 8},
    "gp": {"num_inducing": 32, "steps": 60, "learning_rate": 0.05},
}


@pytest.fixture(scope="module")
def toy_priors():
    return {kind: priors.fit(kind, jax.random.key(3), TOY_X, TOY_Y, **opts) for kind, opts in KIND_OPTIONS.items()}


@pytest.mark.parametrize("kind", ["mlp", "floor", "ensemble", "dropout"])
def test_mlp_kinds_fit_the_heteroscedastic_toy(toy_priors, kind):
    prior = toy_priors[kind]
    grid = jnp.linspace(-0.9, 0.9, 7)[:, None]
    mean, std = jax.jit(priors.predict)(prior, grid)
    np.testing.assert_allclose(mean[:, 0], 0.5 * np.sin(3.0 * grid[:, 0]), atol=0.08)
    edge_std, centre_std = float(std[0, 0] + std[-1, 0]) / 2, float(std[3, 0])
    assert edge_std > 2.0 * centre_std, (edge_std, centre_std)  # learns the noise grows with |x|
    if kind == "floor":
        assert float(std.min()) >= 0.1 - 1e-6


def test_ensemble_and_dropout_moments_are_mixture_moments():
    means = jnp.asarray([[[0.0, 1.0]], [[2.0, 1.0]]])  # [K=2, B=1, D=2]
    stds = jnp.asarray([[[1.0, 0.5]], [[1.0, 0.5]]])
    mean, std = priors.mlp.mixture_moments(means, stds)
    np.testing.assert_allclose(mean, [[1.0, 1.0]])
    np.testing.assert_allclose(std, [[np.sqrt(2.0), 0.5]], rtol=1e-6)


def test_dropout_predict_is_deterministic_and_jittable(toy_priors):
    prior = toy_priors["dropout"]
    x = jnp.asarray(TOY_X[:5], jnp.float32)
    eager = priors.predict(prior, x)
    jitted = jax.jit(priors.predict)(prior, x)
    np.testing.assert_allclose(eager[0], jitted[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eager[1], jitted[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", priors.KINDS)
def test_save_load_round_trip(toy_priors, tmp_path, kind):
    prior = toy_priors[kind]
    priors.save(prior, tmp_path / kind, info={"note": "test"})
    loaded, meta = priors.load_with_metadata(tmp_path / kind, obs_size=1, action_size=1)
    assert meta["kind"] == kind and meta["fit"] == {"note": "test"}
    x = jnp.asarray(TOY_X[:9], jnp.float32)
    for a, b in zip(priors.predict(prior, x), priors.predict(loaded, x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_load_errors(toy_priors, tmp_path):
    path = tmp_path / "mlp"
    priors.save(toy_priors["mlp"], path)
    with pytest.raises(PriorError, match="observation size 1, but this env has 17"):
        priors.load(path, obs_size=17)
    with pytest.raises(PriorError, match="no prior at"):
        priors.load(tmp_path / "missing")
    (path / "prior.npz").write_bytes(b"not a zip")
    with pytest.raises(PriorError, match="cannot read the prior"):
        priors.load(path)
    priors.save(toy_priors["mlp"], path)
    meta = json.loads((path / "prior.json").read_text())
    (path / "prior.json").write_text(json.dumps({**meta, "format": "something else"}))
    with pytest.raises(PriorError, match="is not a kl_rl prior"):
        priors.load(path)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: priors.fit("gaussian", jax.random.key(0), TOY_X, TOY_Y), "unknown prior 'gaussian'; choose one of gp"),
    (lambda: priors.fit("gp", jax.random.key(0), TOY_X, TOY_Y, kernel="cosine"), "unknown kernel 'cosine'"),
    (lambda: priors.fit("mlp", jax.random.key(0), TOY_X, TOY_Y, num_members=3), "unknown option"),
    (lambda: priors.fit("mlp", jax.random.key(0), TOY_X, TOY_Y[:-1]), "differ in length"),
    (lambda: priors.fit("mlp", jax.random.key(0), TOY_X[:, 0], TOY_Y), "must be 2-D"),
    (lambda: priors.fit("gp", jax.random.key(0), TOY_X[:3], TOY_Y[:3]), "too few points"),
    (lambda: priors.fit("gp", jax.random.key(0), TOY_X[:20], TOY_Y[:20], num_inducing=0), "num_inducing"),
    (lambda: priors.fit("mlp", jax.random.key(0), np.full((20, 1), np.nan), TOY_Y[:20]), "NaN or inf"),
    (lambda: priors.fit("dropout", jax.random.key(0), TOY_X, TOY_Y, dropout_rate=1.5), "dropout_rate"),
])
def test_bad_options_are_one_line_errors(call, message):
    with pytest.raises(PriorError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


def test_predict_checks_observation_width(toy_priors):
    with pytest.raises(AssertionError):
        priors.predict(toy_priors["mlp"], jnp.zeros((3, 2)))


def test_a_registered_kind_is_fitted_predicted_stored_and_trained_with(tmp_path, pointmass_demos):
    """A new kind is one ``register`` call: fit, predict, storage and TrainConfig follow."""
    import dataclasses as dc

    from flax import struct

    from kl_rl.config import TrainConfig
    from kl_rl.priors import registry

    @dc.dataclass(frozen=True)
    class ConstantOptions:
        std: float = 0.5
        """The predictive std everywhere."""

    @struct.dataclass
    class ConstantPrior:
        obs_mean: jax.Array
        mean: jax.Array  # [act_dim]
        std: jax.Array  # [act_dim]
        kind: str = struct.field(pytree_node=False, default="constant")

    def fit(key, obs, act, options):
        return ConstantPrior(jnp.asarray(obs.mean(0), jnp.float32), jnp.asarray(act.mean(0), jnp.float32),
                             jnp.full(act.shape[1], options.std, jnp.float32)), {"fit_seconds": 0.0}

    def predict(prior, obs):
        return (jnp.broadcast_to(prior.mean, (obs.shape[0], prior.mean.shape[0])),
                jnp.broadcast_to(prior.std, (obs.shape[0], prior.std.shape[0])))

    registry.register(registry.PriorKind("constant", ConstantOptions, ConstantPrior, fit, predict, {}))
    try:
        obs, act = pointmass_demos.observations, pointmass_demos.actions
        prior, info = priors.fit_with_info("constant", jax.random.key(0), obs, act, std=0.25)
        assert info["options"] == {"std": 0.25}
        mean, std = priors.predict(prior, jnp.asarray(obs[:3]))
        np.testing.assert_allclose(std, 0.25)
        np.testing.assert_allclose(mean, np.broadcast_to(np.asarray(act).mean(0), mean.shape), rtol=1e-5)
        priors.save(prior, tmp_path / "p")
        loaded, meta = priors.load_with_metadata(tmp_path / "p", obs_size=obs.shape[1], action_size=act.shape[1])
        assert meta["kind"] == "constant" and meta["action_size"] == act.shape[1]
        chex.assert_trees_all_close(loaded, prior)
        assert TrainConfig(env="pointmass", algo="kl", prior="constant").validate().prior == "constant"
        with pytest.raises(PriorError, match="unknown option"):
            priors.options_for("constant", mean=1.0)
    finally:
        del registry.KINDS["constant"]
    with pytest.raises(ValueError, match="unknown prior 'constant'"):
        TrainConfig(env="pointmass", algo="kl", prior="constant").validate()


@pytest.mark.parametrize("damage", ["truncated npz", "empty npz", "garbage json", "json list", "json without fields"])
def test_a_damaged_prior_cache_entry_is_refitted(tmp_path, pointmass_demos, damage, capsys):
    """A cache entry cut short by a kill or a full disk, or edited by hand, is named and refitted
    (then overwritten); never a traceback."""
    from kl_rl.prior_source import get_prior

    options = {"steps": 20, "hidden_sizes": (8,)}
    demos_path = tmp_path / "demos.npz"
    demos_path.write_bytes(b"stands in for the demonstrations file; the cache key hashes it")
    call = lambda: get_prior("mlp", pointmass_demos, demos_path, None, options, 0, str(tmp_path / "cache"))  # noqa: E731
    prior, info = call()
    assert info["source"] == "fitted"
    (entry,) = (tmp_path / "cache").iterdir()
    npz, meta = entry / "prior.npz", entry / "prior.json"
    if damage == "truncated npz":
        npz.write_bytes(npz.read_bytes()[:100])
    elif damage == "empty npz":
        npz.write_bytes(b"")
    elif damage == "garbage json":
        meta.write_text("{not json")
    elif damage == "json list":
        meta.write_text("[]")
    else:
        record = json.loads(meta.read_text())
        meta.write_text(json.dumps({k: v for k, v in record.items() if k not in ("static", "obs_size")}))
    capsys.readouterr()
    again, info = call()
    assert info["source"] == "fitted" and f"cache entry {entry} unreadable" in capsys.readouterr().out
    x = jnp.asarray(pointmass_demos.observations[:5])
    chex.assert_trees_all_close(priors.predict(again, x), priors.predict(prior, x))  # same key, same fit
    assert get_prior("mlp", pointmass_demos, demos_path, None, options, 0, str(tmp_path / "cache"))[1]["source"] \
        == f"cache {entry.name}"  # the refit replaced the damaged entry; recorded by key, not by path


def test_the_best_episodes_have_their_own_prior_cache_entry(tmp_path, pointmass_demos):
    """One episode picked by return is not the file's first: its fit gets a cache entry of its own."""
    from kl_rl import demos as demos_lib
    from kl_rl.prior_source import get_prior

    options = {"steps": 5, "hidden_sizes": (8,)}
    demos_path = tmp_path / "demos.npz"
    demos_path.write_bytes(b"stands in for the demonstrations file")
    for pick in ("first", "best", "first"):
        get_prior("mlp", demos_lib.select(pointmass_demos, 1, pick), demos_path, 1, options, 0, str(tmp_path / "c"))
    assert len(list((tmp_path / "c").iterdir())) == 2
    from kl_rl.prior_source import load_demos

    with pytest.raises(demos_lib.DemosError, match="give --num-demos N too"):
        load_demos("pointmass", 2, 2, demos_path, None, "best")


def test_a_record_names_demonstrations_under_the_working_directory_relatively(tmp_path, monkeypatch):
    """sweep.json's demonstrations path: relative where the file lies under the working directory
    (a record committed from a checkout names no machine's folders), as given elsewhere."""
    from kl_rl.prior_source import recorded_path

    inside = tmp_path / "runs" / "human" / "door_human.npz"
    inside.parent.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert recorded_path(inside) == str(Path("runs") / "human" / "door_human.npz")
    assert recorded_path("data/demos/door.npz") == "data/demos/door.npz"
    monkeypatch.chdir(inside.parent.parent)
    assert recorded_path(tmp_path / "elsewhere.npz") == str(tmp_path / "elsewhere.npz")
