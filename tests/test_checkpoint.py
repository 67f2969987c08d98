"""Checkpoint round trip of the pytree kinds a TrainState holds: typed PRNG keys, zero-size
arrays (MJX keeps some, which orbax refuses on its own), nested dataclasses; keeping the newest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from kl_rl import checkpoint


@struct.dataclass
class Toy:
    key: jax.Array
    empty: jax.Array
    params: dict
    step: jax.Array


def test_round_trip_keys_and_zero_size_arrays(tmp_path):
    state = Toy(key=jax.random.key(3), empty=jnp.zeros((4, 0)), params={"w": jnp.arange(6.0).reshape(2, 3)},
                step=jnp.int32(7))
    mgr = checkpoint.manager(tmp_path, keep=2)
    for epoch in range(4):
        checkpoint.save(mgr, epoch, state.replace(step=jnp.int32(epoch)), {"epoch": epoch, "next_eval": 10})
    mgr.close()
    assert checkpoint.latest_epoch(tmp_path) == 3
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2  # the newest two kept
    restored, loop = checkpoint.restore(tmp_path, state)
    assert loop == {"epoch": 3, "next_eval": 10} and int(restored.step) == 3
    assert restored.empty.shape == (4, 0)
    np.testing.assert_array_equal(restored.params["w"], state.params["w"])
    np.testing.assert_array_equal(jax.random.key_data(restored.key), jax.random.key_data(state.key))
    np.testing.assert_array_equal(jax.random.uniform(restored.key), jax.random.uniform(state.key))


def test_restore_without_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="has no checkpoint to resume from"):
        checkpoint.restore(tmp_path, Toy(jax.random.key(0), jnp.zeros(0), {}, jnp.int32(0)))


def test_folder_of_an_interrupted_save_is_removed(tmp_path):
    """A kill during a save leaves orbax's temporary folder behind; the next manager drops it (in
    the background, finished before its first save) and keeps the finished checkpoints."""
    mgr = checkpoint.manager(tmp_path)
    checkpoint.save(mgr, 0, {"x": jnp.ones(3)}, {"epoch": 0})
    mgr.close()
    stale = tmp_path / "checkpoints" / "1.orbax-checkpoint-tmp-123"
    (stale / "state").mkdir(parents=True)
    resumed = checkpoint.manager(tmp_path)
    checkpoint.save(resumed, 2, {"x": jnp.ones(3)}, {"epoch": 2})
    resumed.close()
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["0", "2"]
