"""CPU: one XLA host device per core, so a sweep's run axis is sharded over the cores. Must run
before JAX starts its CPU backend, so this module imports nothing from JAX."""

from __future__ import annotations

import os


def split_cpu_devices(host_devices: int = -1) -> None:
    """Sets the XLA host device count (measured faster than one vmapped device on a 2-core CPU:
    benchmarks/sweep.py). -1: one per core; 0: JAX's default of one device. An
    --xla_force_host_platform_device_count already in XLA_FLAGS wins."""
    flags = os.environ.get("XLA_FLAGS", "")
    if host_devices == 0 or "xla_force_host_platform_device_count" in flags:
        return
    count = (os.cpu_count() or 1) if host_devices < 0 else host_devices
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
