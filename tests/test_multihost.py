"""A multi-host sweep, tested on one machine: two processes (``jax.distributed`` with the
coordinator on 127.0.0.1 and CPU collectives) run one sharded sweep; it equals the
single-process sweep over two devices, and only process 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

TINY = ["--algo", "sac", "--env", "pointmass", "--total-steps", "256", "--num-envs", "4",
        "--env-steps-per-epoch", "64", "--learning-starts", "64", "--batch-size", "32", "--episode-length", "20",
        "--eval-every", "128", "--eval-episodes", "2", "--no-progress", "--seeds", "2", "--grid", "tau=0.005,0.01",
        "--compile-cache", ""]
TIMING = ("epoch_seconds", "env_steps_per_s", "wall_seconds")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in path.read_text().splitlines()]


def test_two_process_sweep_equals_the_single_process_sweep(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cmd = [sys.executable, "-m", "kl_rl.cli", "sweep", *TINY]
    address = f"127.0.0.1:{_free_port()}"
    hosts = [subprocess.Popen([*cmd, "--coordinator-address", address, "--num-processes", "2", "--process-id", str(i),
                               "--sweep-name", "sw", "--runs-dir", str(tmp_path / f"runs{i}")],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    single = subprocess.run([*cmd, "--host-devices", "2", "--sweep-name", "sw", "--runs-dir", str(tmp_path / "single")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    outs = [h.communicate(timeout=600) for h in hosts]
    for host, (_, err) in zip(hosts, outs, strict=True):
        assert host.returncode == 0, err[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    assert "on 2 device(s)" in outs[0][0] and "process 1: done; process 0 wrote the results" in outs[1][0]
    assert not (tmp_path / "runs1").exists()  # only process 0 writes
    names = [f"tau={tau}-s{seed}" for tau in ("0.005", "0.01") for seed in (0, 1)]
    for name in names:
        multi, one = tmp_path / "runs0" / "sw" / name, tmp_path / "single" / "sw" / name
        assert _rows(multi / "metrics.jsonl") == _rows(one / "metrics.jsonl"), name
        assert (multi / "params.msgpack").read_bytes() == (one / "params.msgpack").read_bytes(), name
        final = [json.loads((d / "summary.json").read_text())["final_eval"]["returns"] for d in (multi, one)]
        assert final[0] == final[1]
    summaries = [(tmp_path / root / "sw" / "summary.csv").read_text() for root in ("runs0", "single")]
    assert summaries[0] == summaries[1]
