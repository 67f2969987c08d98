"""JAX's persistent compilation cache: a second run of the same config skips most compiling."""

from __future__ import annotations

import os
from pathlib import Path

import jax

DEFAULT_DIR = Path(os.environ.get("KL_RL_COMPILE_CACHE", Path.home() / ".cache" / "kl_rl" / "jax"))


def enable(cache_dir: str | os.PathLike[str] | None = DEFAULT_DIR) -> Path | None:
    """Caches every compiled program under ``cache_dir`` (None or "" turns the cache off)."""
    if not cache_dir:
        return None
    path = Path(cache_dir).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
