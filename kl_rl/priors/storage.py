"""Saving and loading priors: ``<dir>/prior.npz`` (the arrays, flattened by key path) and
``<dir>/prior.json`` (kind, static fields, dims, fit record, kl_rl version). Both are written
through temporary files and renamed, so a crash leaves the old pair or the new one."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from flax import serialization

import kl_rl
from kl_rl.priors.base import PriorError
from kl_rl.priors.registry import KINDS

FORMAT = "kl_rl.prior/1"


def _paths(path: str | Path) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix in (".npz", ".json"):
        base = base.parent
    return base / "prior.npz", base / "prior.json"


def _flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    if isinstance(tree, dict):
        out: dict[str, np.ndarray] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}/"))
        return out
    return {prefix.rstrip("/"): np.asarray(tree)}


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return tree


def save(prior: Any, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Writes the prior into directory ``path`` (created if needed); returns the .npz path."""
    npz, meta = _paths(path)
    npz.parent.mkdir(parents=True, exist_ok=True)
    statics = {f.name: getattr(prior, f.name) for f in dataclasses.fields(prior)
               if not f.metadata.get("pytree_node", True)}
    metadata = {"format": FORMAT, "kind": prior.kind,
                "static": {k: (list(v) if isinstance(v, tuple) else v) for k, v in statics.items()},
                "obs_size": int(np.shape(prior.obs_mean)[0]), "action_size": _action_size(prior),
                "kl_rl_version": kl_rl.__version__, "fit": info or {}}
    tmp_npz = npz.with_suffix(".tmp.npz")
    np.savez_compressed(tmp_npz, **_flatten(serialization.to_state_dict(prior)))
    tmp_meta = meta.with_suffix(".tmp.json")
    tmp_meta.write_text(json.dumps(metadata, indent=2, default=float))
    tmp_npz.replace(npz)
    tmp_meta.replace(meta)
    return npz


def load_with_metadata(path: str | Path, obs_size: int | None = None,
                       action_size: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Reads a prior saved by ``save``; checks its dims against ``obs_size`` / ``action_size``
    when given. Every failure is a one-line PriorError."""
    npz, meta = _paths(path)
    if not npz.exists() or not meta.exists():
        raise PriorError(f"no prior at {Path(path)} (expected prior.npz and prior.json); fit one with "
                         "`kl-rl fit-prior`")
    try:
        metadata = json.loads(meta.read_text())
        with np.load(npz) as data:
            flat = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise PriorError(f"cannot read the prior at {npz.parent}: {err.__class__.__name__}: {err}; "
                         "re-fit it with `kl-rl fit-prior`") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or metadata.get("kind") not in KINDS:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise PriorError(f"{meta} is not a kl_rl prior (format {found!r}); re-fit it with `kl-rl fit-prior`")
    try:
        static = {k: (tuple(v) if isinstance(v, list) else v) for k, v in metadata["static"].items()}
        prior = KINDS[metadata["kind"]].prior_class(**_unflatten(flat), **static)
        int(metadata["obs_size"]), int(metadata["action_size"])
    except (TypeError, KeyError, AttributeError, ValueError) as err:
        raise PriorError(f"the prior at {npz.parent} is incomplete ({err.__class__.__name__}: {err}); "
                         "re-fit it") from None
    for name, want, have in (("observation", obs_size, metadata["obs_size"]),
                             ("action", action_size, metadata["action_size"])):
        if want is not None and want != have:
            raise PriorError(f"the prior at {npz.parent} was fitted on {name} size {have}, but this env has {want}; "
                             "fit a prior on this env's demonstrations")
    bad = [k for k, v in flat.items() if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all()]
    if bad:
        raise PriorError(f"the prior at {npz.parent} holds non-finite values ({', '.join(bad)}); re-fit it")
    return prior, metadata


def load(path: str | Path, obs_size: int | None = None, action_size: int | None = None) -> Any:
    """Reads a prior saved by ``save`` (see ``load_with_metadata``)."""
    return load_with_metadata(path, obs_size, action_size)[0]


def _action_size(prior: Any) -> int:
    """The action dimension of any kind: the shape of its prediction at one state."""
    import jax

    obs = jax.ShapeDtypeStruct((1, int(np.shape(prior.obs_mean)[0])), np.float32)
    return int(jax.eval_shape(KINDS[prior.kind].predict, prior, obs)[0].shape[1])
