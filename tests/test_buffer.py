"""Replay buffer: ring wrap-around, size bookkeeping and sampling of filled rows only."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_rl import buffer as replay
from kl_rl.buffer import Transition


def _batch(start: int, n: int) -> Transition:
    ids = jnp.arange(start, start + n, dtype=jnp.float32)
    return Transition(
        obs=jnp.stack([ids, -ids], axis=1), action=ids[:, None], reward=ids, next_obs=jnp.stack([ids, ids], 1),
        terminated=jnp.zeros(n),
    )


def test_add_wraps_around_and_tracks_size():
    buf = replay.init(capacity=5, obs_size=2, action_size=1)
    buf = replay.add(buf, _batch(0, 3))
    assert int(buf.size) == 3 and int(buf.insert_pos) == 3
    buf = replay.add(buf, _batch(3, 3))  # rows 3, 4, then 0
    assert int(buf.size) == 5 and int(buf.insert_pos) == 1
    np.testing.assert_array_equal(buf.data.reward, [5, 1, 2, 3, 4])
    np.testing.assert_array_equal(buf.data.obs[:, 1], -np.array([5, 1, 2, 3, 4]))
    buf = replay.add(buf, _batch(6, 5))  # a full lap
    np.testing.assert_array_equal(buf.data.reward, [10, 6, 7, 8, 9])
    assert int(buf.insert_pos) == 1


def test_add_works_under_jit_with_donation():
    add = jax.jit(replay.add, donate_argnums=0)
    buf = replay.init(capacity=8, obs_size=2, action_size=1)
    for i in range(3):
        buf = add(buf, _batch(3 * i, 3))
    np.testing.assert_array_equal(buf.data.reward, [8, 1, 2, 3, 4, 5, 6, 7])
    assert int(buf.size) == 8


def test_sample_draws_only_filled_rows_with_consistent_fields():
    buf = replay.add(replay.init(capacity=100, obs_size=2, action_size=1), _batch(0, 7))
    sample = replay.sample(buf, jax.random.key(0), (4, 50))
    assert sample.obs.shape == (4, 50, 2) and sample.reward.shape == (4, 50)
    rewards = np.asarray(sample.reward)
    assert rewards.min() >= 0 and rewards.max() <= 6
    assert set(np.unique(rewards)) == set(range(7))  # 200 draws hit all 7 rows
    np.testing.assert_array_equal(np.asarray(sample.obs)[..., 1], -rewards)
    np.testing.assert_array_equal(np.asarray(sample.action)[..., 0], rewards)


def test_too_large_batch_is_an_error():
    with pytest.raises(ValueError, match="capacity 2"):
        replay.add(replay.init(capacity=2, obs_size=2, action_size=1), _batch(0, 3))
