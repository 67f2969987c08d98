"""The experiment scripts in quick mode (through a subprocess, as a user runs them) and the two
notebooks executed end to end in quick mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KL_RL_PRIOR_CACHE": str(out / "prior-cache")}
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script), "--quick", "--out", str(out), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_pathology_shows_inverse_square_growth(tmp_path):
    _run("pathology.py", tmp_path)
    record = json.loads((tmp_path / "pathology.json").read_text())
    for name, slope in record["slopes"].items():
        assert -2.1 < slope < -1.9, (name, slope)
    rows = record["rows"]
    # the project's estimator agrees with the closed form (Gaussian policy) within 5 standard errors
    for row in rows:
        assert abs(row["kl_estimate"] - row["kl_closed"]) < 5 * row["kl_estimate_se"] + 1e-9
    assert (tmp_path / "pathology.png").stat().st_size > 0
    assert "slope" in (tmp_path / "table.md").read_text()


def test_variance_gp_grows_away_from_the_demonstrations(tmp_path):
    _run("variance.py", tmp_path)
    kinds = json.loads((tmp_path / "variance.json").read_text())["envs"]["pointmass"]["kinds"]
    assert set(kinds) == {"gp", "mlp", "ensemble", "dropout", "floor"}
    ratio = {k: row["std_far"] / row["std_near"] for k, row in kinds.items()}
    assert ratio["gp"] > 1.5 and ratio["gp"] > ratio["mlp"], ratio
    for name in ("std_vs_distance.png", "table.md", "pointmass/pca_std_map.png"):
        assert (tmp_path / name).exists(), name


def test_priors_and_single_demo_run_through_the_sweep_runner(tmp_path):
    _run("priors.py", tmp_path / "priors", "--labels", "nppac", "kl:mlp", "sac")
    record = json.loads((tmp_path / "priors" / "priors.json").read_text())
    summary = record["envs"]["pointmass"]
    assert set(summary) == {"nppac", "kl:mlp", "sac"}
    for label, rec in summary.items():
        assert rec["final"]["n"] == 2 and np.isfinite(rec["final"]["mean"]), label
    assert summary["kl:mlp"]["prior_std_min"] < summary["nppac"]["prior_std_min"]  # the MLP's variance collapses
    assert (tmp_path / "priors" / "runs" / "pointmass" / "nppac" / "summary.csv").exists()
    # a rerun reads finished labels back instead of training them again
    proc = _run("priors.py", tmp_path / "priors", "--labels", "nppac", "kl:mlp", "sac")
    assert "runs per static choice" not in proc.stdout
    # a label whose sweep stopped on a non-finite metric is reported as diverged and not rerun
    mlp_dir = tmp_path / "priors" / "runs" / "pointmass" / "kl-mlp"
    (mlp_dir / "summary.csv").unlink()
    (mlp_dir / "diverged.json").write_text(json.dumps({"error": "run base-s1, epoch 3: critic_loss is nan"}))
    proc = _run("priors.py", tmp_path / "priors", "--labels", "nppac", "kl:mlp", "sac")
    assert "runs per static choice" not in proc.stdout
    summary = json.loads((tmp_path / "priors" / "priors.json").read_text())["envs"]["pointmass"]
    assert summary["kl:mlp"]["diverged"].startswith("run base-s1") and "final" not in summary["kl:mlp"]
    assert summary["nppac"]["final"]["n"] == 2
    assert "| kl:mlp | 2 | diverged at 512 steps |" in (tmp_path / "priors" / "table.md").read_text()

    _run("single_demo.py", tmp_path / "single", "--labels", "nppac")
    results = json.loads((tmp_path / "single" / "single_demo.json").read_text())["results"]
    assert set(results) == {"nppac (1 demo)", "nppac (6 demos)"}
    assert (tmp_path / "single" / "single_demo.png").exists()


def test_experiment_bad_input_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "variance.py"), "--envs", "nosuch",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("variance: error: no demonstrations at")


@pytest.mark.parametrize("name", ["pathology", "quickstart"])
def test_notebook_runs_in_quick_mode(name, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    monkeypatch.setenv("KL_RL_QUICK", "1")
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    assert "colab.research.google.com" in notebook.cells[0].source  # the "Open in Colab" badge
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()  # raises on any error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "display_data" for o in outputs)  # the figures were drawn
