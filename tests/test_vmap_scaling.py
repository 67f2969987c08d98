"""benchmarks/vmap_scaling.py: bad input is refused with one line (exit 2) before any fit or
compile; one tiny probe (pointmass sac, two vmapped runs) writes positive rates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vmap_scaling.py"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["--runs", "0"], "--runs, --num-envs and --epochs must be >= 1"),
    (["--num-envs", "48", "--steps-per-epoch", "64"], "is not a multiple of --num-envs [48]"),
    (["--algo", "nope"], "unknown algo 'nope'"),
    (["--set", "utd=0"], "utd"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    proc = _cli(*args, "--out", str(tmp_path / "out.json"), cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert "prior:" not in proc.stdout and not (tmp_path / "out.json").exists()


def test_probe_writes_finite_rates_for_each_run_count(tmp_path):
    out = tmp_path / "out.json"
    proc = _cli("--env", "pointmass", "--algo", "sac", "--runs", "2", "--num-envs", "4", "--epochs", "1",
                "--steps-per-epoch", "32", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["results"]
    assert [(r["runs"], r["num_envs"]) for r in rows] == [(2, 4)]
    assert rows[0]["env_steps_per_s_per_run"] > 0
    assert rows[0]["env_steps_per_s_aggregate"] == pytest.approx(2 * rows[0]["env_steps_per_s_per_run"])
