"""Checkpoints of a whole training run with orbax: the TrainState (networks, optimizer states,
alpha, prior, replay buffer, env state, PRNG keys, counters) plus the host loop's position.

Orbax writes each checkpoint into a temporary folder and renames it when complete, so a kill
at any moment leaves the previous checkpoints intact; the last ``keep`` are kept. Typed PRNG
keys are stored as their raw key data and wrapped again on restore.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
    """No usable checkpoint where one was expected."""


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(state: Any) -> Any:
    """Keys as raw key data; zero-size arrays (MJX keeps some, e.g. ``act`` of models without
    actuator state), which orbax refuses, as a scalar placeholder."""

    def one(x):
        if _is_key(x):
            return jax.random.key_data(x)
        if np.size(x) == 0:
            return np.zeros((), np.asarray(x).dtype)
        return x

    return jax.tree.map(one, state)


def _from_storable(stored: Any, template: Any) -> Any:
    def one(s, t):
        if _is_key(t):
            return jax.random.wrap_key_data(s)
        if np.size(t) == 0:
            return np.zeros(np.shape(t), np.asarray(t).dtype)
        return s

    return jax.tree.map(one, stored, template)


def manager(run_dir: Path, keep: int = 3) -> ocp.CheckpointManager:
    """The run's orbax manager: synchronous saves, the newest ``keep`` kept, and the temporary
    folder of a save that a kill interrupted removed (it is incomplete by definition; orbax does
    that in the background from creation and waits for it before the first save)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(Path(run_dir).absolute() / "checkpoints", options=options,
                                 item_names=("state", "loop"))


def save(mgr: ocp.CheckpointManager, epoch: int, state: Any, loop: dict[str, Any]) -> None:
    """Writes checkpoint ``epoch``: the state and the host loop's position (JSON)."""
    mgr.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(_to_storable(jax.device_get(state))),
                                            loop=ocp.args.JsonSave(loop)))
    mgr.wait_until_finished()


def latest_epoch(run_dir: Path) -> int | None:
    folder = Path(run_dir) / "checkpoints"
    if not folder.exists():
        return None
    return manager(run_dir).latest_step()


def restore(run_dir: Path, template: Any, epoch: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Checkpoint ``epoch`` of ``run_dir`` (default: the latest) as (state shaped like ``template``,
    loop position)."""
    epoch = latest_epoch(run_dir) if epoch is None else epoch
    if epoch is None:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from; start a new run instead of --resume")
    mgr = manager(run_dir)
    abstract = _to_storable(jax.device_get(template))
    restored = mgr.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                          loop=ocp.args.JsonRestore()))
    return _from_storable(restored["state"], template), restored["loop"]


def stored_shape(run_dir: Path, path: tuple[str, ...], epoch: int | None = None) -> tuple[int, ...]:
    """The shape of one array of checkpoint ``epoch`` (default: the latest) of ``run_dir``,
    named by its path of field names in the state (e.g. the demonstrations buffer's rewards),
    read from the checkpoint's metadata without restoring it."""
    epoch = latest_epoch(run_dir) if epoch is None else epoch
    if epoch is None:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from; start a new run instead of --resume")
    folder = Path(run_dir).absolute() / "checkpoints" / str(epoch) / "state"
    tree = ocp.StandardCheckpointer().metadata(folder)
    tree = getattr(tree, "item_metadata", tree)
    for name in path:
        tree = tree[name]
    return tuple(tree.shape)
