"""Shared plumbing of the experiment scripts: arguments, the quick (CI-sized) configuration,
training a list of algorithms through the sweep runner, aggregating over seeds, and writing
``results/<experiment>/``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENVS = ("halfcheetah", "hopper", "walker2d", "ant")

# --quick: the pointmass toy with demonstrations of a scripted controller, tiny networks and a
# few hundred steps; small enough for CI, and exercising every code path of the full runs.
QUICK_CONFIG = dict(env="pointmass", num_envs=4, episode_length=20, total_steps=512, env_steps_per_epoch=64,
                    learning_starts=64, batch_size=32, hidden_sizes=(32, 32), eval_episodes=3,
                    pretrain_epochs=10, pretrain_batch_size=16, critic_warmup=128)
DIVERGED_FILE = "diverged.json"  # in a label's sweep folder: the run stopped on a non-finite metric
# <out>/runs/ (checkpoints, replay buffers: large) is ignored by git; a finished label's record
# (its sweep.json, summary and per-seed metrics: a few kB) is copied into <out>/records/, which is
# committed, so that a fresh clone reads finished labels back instead of training them again
RECORDS = "records"
QUICK_PRIOR_OPTIONS = dict(num_inducing=24, gp_steps=20, fit_points=0, mlp_steps=300, num_members=2, num_passes=4)


def experiment_parser(doc: str | None, name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a CI-sized version (pointmass toy, few steps)")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default results/{name}, "
                        f"or results/{name}/quick with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="base seed")
    parser.set_defaults(experiment=name)
    return parser


SEEDS = 3  # the experiments' seeds per label unless --seeds asks for more (the plan's budget)


def add_budget_args(parser: argparse.ArgumentParser, seeds: int = SEEDS, total_steps: int = 100_000) -> None:
    """The training budget of the RL experiments (ignored by --quick, which has its own)."""
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--total-steps", type=int, default=total_steps)
    parser.add_argument("--eval-every", type=int, default=5_000)


def prior_options(args: argparse.Namespace):
    """The prior options of every fit: defaults, or tiny ones with --quick."""
    from kl_rl.priors import PriorOptions

    return PriorOptions(**QUICK_PRIOR_OPTIONS) if args.quick else PriorOptions()


def resolve_out(args: argparse.Namespace) -> Path:
    """The output folder: --out, else results/<experiment>[/quick]; created."""
    if args.out is None:
        args.out = ROOT / "results" / args.experiment / ("quick" if args.quick else "")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out


def machine() -> str:
    import os

    import jax

    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, "
            f"jax {jax.__version__} on {jax.default_backend()} ({devices})")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def finish(args: argparse.Namespace, name: str, text: str, payload: dict[str, Any],
           started: float | None = None) -> None:
    """Writes ``table.md`` (the command, the machine, the wall time, then ``text``) and
    ``<name>.json``, each via a temporary file so a kill leaves the old or the new file; in
    ``results/<name>`` (not ``--out`` or quick runs), then the results report's generated tables."""
    from kl_rl.run_folder import write_json_atomic

    out = resolve_out(args)
    command = "python " + shlex.join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute()
                                      and ROOT in Path(sys.argv[0]).parents else sys.argv[0], *sys.argv[1:]])
    wall = (f"; this invocation's wall time {time.perf_counter() - started:.0f} s (labels it read back "
            "from their records were trained by earlier invocations)") if started is not None else ""
    header = f"Command: `{command}`{' (quick mode)' if args.quick else ''}\n\nMachine: {machine()}{wall}\n\n"
    (out / "table.md.tmp").write_text(header + text)
    (out / "table.md.tmp").replace(out / "table.md")  # renamed when complete: a kill leaves the old or new file
    write_json_atomic(out / f"{name}.json", {"command": command, "quick": args.quick, **payload})
    if out == ROOT / "results" / name:  # the real records: regenerate the results report's tables from them
        from report import update_report

        update_report()
    print(header + text)


def prepare_jax() -> None:
    """Before anything starts JAX's CPU backend: one XLA host device per core, so the seeds of a
    sweep are sharded over the cores (measured faster than one vmapped device: benchmarks/sweep.py);
    and the persistent compilation cache where the CLI keeps it, so that a relaunched or resumed
    label skips its compiles (minutes each on the door)."""
    from kl_rl import compile_cache
    from kl_rl.host_devices import split_cpu_devices

    split_cpu_devices(-1)
    compile_cache.enable()


def quick_demos(out: Path, seed: int = 0) -> Path:
    """Noisy demonstrations of the scripted pointmass controller (the quick mode's expert)."""
    import jax

    from kl_rl import demos as demos_lib
    from kl_rl.envs import make_env
    from kl_rl.envs.pointmass import homing_policy

    path = out / "pointmass_demos.npz"
    if not path.exists():
        env = make_env("pointmass", 6, QUICK_CONFIG["episode_length"])
        data = demos_lib.collect(env, homing_policy, jax.random.key(seed + 11), noise_std=0.1,
                                 metadata={"env": "pointmass", "expert": "scripted homing controller"})
        demos_lib.save(data, path)
    return path


def base_config(args: argparse.Namespace, env: str, total_steps: int):
    """The TrainConfig of every run of an experiment (quick: the pointmass toy)."""
    from kl_rl.config import TrainConfig

    if args.quick:
        return TrainConfig(**QUICK_CONFIG)
    return TrainConfig(env=env, total_steps=total_steps, learning_starts=min(5_000, total_steps // 2))


def train_labels(args: argparse.Namespace, cfg, labels: Sequence[str], seeds: int, folder: str,
                 demos: Path | None = None, num_demos: int | None = None, demo_pick: str = "first",
                 eval_every: int = 5_000,
                 canonical: Sequence[str] = (), reuse: Sequence[Path] = (),
                 read_back: Sequence[str] = ()) -> dict[str, list[list[dict[str, Any]]]]:
    """Trains every ``algo[:prior]`` label for ``seeds`` seeds as one sweep program per label
    (seeds vmapped, sharded over the devices) into ``<out>/runs/<folder>/<label>``, and keeps a
    finished label's record in ``<out>/records/<folder>/<label>``. A label with a record (or a
    finished sweep) of the same settings and at least ``seeds`` seeds is read back, all its seeds,
    instead of rerun (one with fewer is trained again at ``seeds``), and one stopped part-way
    continues from its latest checkpoint, so an interrupted experiment loses at most the epochs
    since that checkpoint. Every other finished record of today's settings in the folder is read
    back too, after training (so one finished meanwhile by another process counts), and tables
    written label by label (one process per core) show every finished label;
    a stale record is left out, never rerun. ``reuse``: records folders of other experiments
    (``<folder>/<label>``); a finished record there of the same settings, demonstrations and prior
    options is the same runs, read back instead of trained again. ``read_back``: more labels taken
    from a record (here or in ``reuse``) where there is one, never trained. Returns label ->
    per-seed metric rows, in the order of ``canonical`` first (then the rest)."""
    from kl_rl import checkpoint
    from kl_rl.loop import NonFiniteError
    from kl_rl.prior_source import Source
    from kl_rl.sweep import expand, label_config, label_folder, resume_sweeps, sweep_labels

    out = resolve_out(args)
    if args.quick:
        demos = quick_demos(out)
    eval_every, results = cfg.env_steps_per_epoch * 2 if args.quick else eval_every, {}  # quick: every other epoch
    for label in ordered([*labels, *read_back], ()):
        label_cfg = label_config(cfg, label)
        name = f"{folder}/{label_folder(label)}"
        sweep_dir, record_dir = out / "runs" / name, out / RECORDS / name
        expected = label_cfg.validate()
        if _finished(record_dir) and _same_sweep(record_dir, expected, seeds, eval_every, at_least=True):
            print(f"{label}: read back from {record_dir}", flush=True)
            results[label] = _label_rows(record_dir)
            continue
        same_runs = [d for d in (other / label_folder(label) for other in reuse)
                     if _finished(d) and _same_sweep(d, expected, seeds, eval_every, at_least=True)
                     and _same_source(d, expected, args, demos, num_demos, demo_pick)]
        if same_runs:
            print(f"{label}: read back from {same_runs[0]} (the same runs)", flush=True)
            results[label] = _label_rows(same_runs[0])
            continue
        if label not in labels:  # read back only
            continue
        diverged = sweep_dir / DIVERGED_FILE
        covers = (sweep_dir / "sweep.json").exists() and _same_sweep(sweep_dir, expected, seeds, eval_every,
                                                                      at_least=True)
        same = covers and seed_count(sweep_dir) == seeds  # the very program asked for: resumable
        if not (_finished(sweep_dir) and covers):
            diverged.unlink(missing_ok=True)
            try:
                if same and checkpoint.latest_epoch(sweep_dir) is not None:  # stopped part-way: continue
                    print(f"{label}: resuming {sweep_dir} from its latest checkpoint", flush=True)
                    resume_sweeps(sweep_dir, progress=False)
                else:
                    sweep_labels(label_cfg, [label], expand(range(seeds), {}), sweep_dir,
                                 source=Source(demos, num_demos, demo_pick, prior_options=prior_options(args)),
                                 eval_every=eval_every, overwrite=True, progress=False,
                                 checkpoint_every=0 if args.quick else 10)
            except NonFiniteError as err:  # the pathology itself: a result, not a crash of the experiment
                diverged.write_text(json.dumps({"error": str(err)}))
                print(f"{label}: diverged ({err})", flush=True)
        keep_record(sweep_dir, record_dir)
        results[label] = _label_rows(sweep_dir)
    # after training, so a label another process finished meanwhile is in this table too
    for label in _recorded_labels(out / RECORDS / folder, cfg, eval_every, exclude=[*labels, *read_back]):
        print(f"{label}: read back from {out / RECORDS / folder / label_folder(label)}", flush=True)
        results[label] = _label_rows(out / RECORDS / folder / label_folder(label))
    return {label: results[label] for label in ordered(results, canonical)}


def with_recorded(args: argparse.Namespace, requested: Sequence[str], known: Sequence[str],
                  folder: Callable[[str], str] = str) -> list[str]:
    """``requested`` plus every other name in ``known`` whose ``<out>/records/<folder(name)>`` holds
    records, in ``known``'s order: an invocation that trains one env (or source) still writes the
    table of every one finished before it, read back from the records, so ``table.md`` never
    loses a section to whichever label happened to finish last. None in quick mode."""
    out = resolve_out(args)
    extra = [] if args.quick else [name for name in known if name not in requested
                                    and (out / RECORDS / folder(name)).is_dir()]
    return ordered([*requested, *extra], known)


def ordered(labels: Sequence[str], canonical: Sequence[str]) -> list[str]:
    """``labels`` without repeats, those in ``canonical`` first in its order, then the rest as given."""
    unique = list(dict.fromkeys(labels))
    rank = {label: i for i, label in enumerate(canonical)}
    return sorted(unique, key=lambda label: (rank.get(label, len(rank)), unique.index(label)))


def _recorded_labels(root: Path, cfg, eval_every: int, exclude: Sequence[str]) -> list[str]:
    """Labels other than ``exclude`` whose finished record under ``root`` ran today's settings, at
    whatever seed count it ran (the tables show each label's)."""
    from kl_rl.sweep import label_config, label_from_folder

    found = []
    for record_dir in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            label = label_from_folder(record_dir.name)
            expected = label_config(cfg, label)
        except ValueError:  # not a label's folder, or a label today's options no longer accept
            continue
        if label not in exclude and _finished(record_dir) and _same_sweep(record_dir, expected, 1, eval_every,
                                                                           at_least=True):
            found.append(label)
    return found


def _finished(sweep_dir: Path) -> bool:
    return (sweep_dir / "summary.csv").exists() or (sweep_dir / DIVERGED_FILE).exists()


def keep_record(sweep_dir: Path, record_dir: Path) -> None:
    """Copies a finished label's sweep.json, per-seed metrics.jsonl and final evaluation, and its
    summary (or divergence note) from ``sweep_dir`` into ``record_dir``, dropping the seed folders
    of an older record with more seeds; the finishing file goes last, so a kill midway leaves a
    record that reads as unfinished."""
    import shutil

    seeds = seed_count(sweep_dir)
    for name in ("summary.csv", DIVERGED_FILE):  # an older record's finishing file
        (record_dir / name).unlink(missing_ok=True)
    for s in range(seeds):
        (record_dir / f"base-s{s}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sweep_dir / f"base-s{s}" / "metrics.jsonl", record_dir / f"base-s{s}" / "metrics.jsonl")
        (record_dir / f"base-s{s}" / FINAL_EVAL_FILE).unlink(missing_ok=True)
        final_eval = _final_eval(sweep_dir / f"base-s{s}")
        if final_eval is not None:
            (record_dir / f"base-s{s}" / FINAL_EVAL_FILE).write_text(json.dumps(final_eval, indent=1) + "\n")
    for extra in record_dir.glob("base-s*"):
        index = extra.name.removeprefix("base-s")
        if index.isdigit() and int(index) >= seeds:
            shutil.rmtree(extra)
    for name in ("sweep.json", "summary.csv", DIVERGED_FILE):
        if (sweep_dir / name).exists():
            shutil.copyfile(sweep_dir / name, record_dir / name)


def seeds_phrase(results: dict[str, list[list[dict[str, Any]]]]) -> str:
    """``3 seeds``, or ``3 to 5 seeds`` where the labels ran different counts (a label trained
    again with more seeds stands beside records of fewer; each table row says its own)."""
    counts = sorted({len(runs) for runs in results.values()})
    if not counts:
        return "no seeds"
    return f"{counts[0]} seeds" if len(counts) == 1 else f"{counts[0]} to {counts[-1]} seeds (per label: column seeds)"


def seed_count(sweep_dir: Path) -> int:
    """How many seeds a label's sweep (or record) ran: its ``sweep.json``'s runs."""
    return len(json.loads((sweep_dir / "sweep.json").read_text())["runs"])


FINAL_EVAL_FILE = "final_eval.json"


def _final_eval(run_dir: Path) -> dict[str, Any] | None:
    """A run's final evaluation (``summary.json``'s ``final_eval``: every episode of the
    ``--final-eval-episodes`` run after training), from a run folder or a record's copy."""
    if (run_dir / FINAL_EVAL_FILE).exists():
        return json.loads((run_dir / FINAL_EVAL_FILE).read_text())
    if (run_dir / "summary.json").exists():
        return json.loads((run_dir / "summary.json").read_text()).get("final_eval")
    return None


def _label_rows(sweep_dir: Path) -> list[list[dict[str, Any]]]:
    """Per seed (every seed the label ran), the metric rows of a finished label, the last one
    carrying the run's final evaluation as ``final_eval`` where it has one; a diverged label's rows
    end in a row naming the error."""
    runs = [_read_rows(sweep_dir / f"base-s{s}" / "metrics.jsonl") for s in range(seed_count(sweep_dir))]
    for s, rows in enumerate(runs):
        final_eval = _final_eval(sweep_dir / f"base-s{s}")
        if rows and final_eval is not None:
            rows[-1] = {**rows[-1], "final_eval": final_eval}
    if (sweep_dir / DIVERGED_FILE).exists():
        error = json.loads((sweep_dir / DIVERGED_FILE).read_text())["error"]
        runs = [rows + [{"diverged": error, "env_steps": rows[-1]["env_steps"]}] for rows in runs]
    return runs


def _same_sweep(sweep_dir: Path, config: Any, seeds: int, eval_every: int, at_least: bool = False) -> bool:
    """Whether ``sweep_dir`` ran ``config`` (a validated TrainConfig), compared by the settings its
    algo reads (``TrainConfig.effective_settings``), with ``seeds`` seeds (``at_least``: that many
    or more, so a record of more seeds stands for a request of fewer); the record is read as
    today's code resolves it, so a folder from before a new option compares with that option's
    default."""
    from kl_rl.config import config_from_json

    record = json.loads((sweep_dir / "sweep.json").read_text())
    ran = config_from_json(record["config"]).validate()
    same = ran.effective_settings() == config.effective_settings()
    count = len(record["runs"])
    return same and (count >= seeds if at_least else count == seeds) and record["eval_every"] == eval_every


def _same_source(record_dir: Path, config: Any, args: argparse.Namespace, demos: Path | None,
                 num_demos: int | None, demo_pick: str = "first") -> bool:
    """Whether ``record_dir`` trained on what a run of ``config`` would read now: the same
    demonstrations file (and, where given, the same episode count and pick) and the same prior
    kind and fit options; so a record of another experiment can stand for this one's runs."""
    from kl_rl.prior_source import default_demos_path
    from kl_rl.priors import kind_options, options_for

    if not config.uses_demos:
        return True
    record = json.loads((record_dir / "sweep.json").read_text())
    ran = record.get("demos", {})
    path = Path(demos) if demos is not None else default_demos_path(config.env)
    ran_path = Path(ran.get("path", ""))
    if (ran_path if ran_path.is_absolute() else ROOT / ran_path).resolve() != path.resolve():
        return False
    if num_demos is not None and (ran.get("num_episodes") != num_demos or ran.get("pick", "first") != demo_pick):
        return False
    if not config.uses_prior:
        return True
    prior = record.get("prior", {})
    options = options_for(config.prior, **kind_options(prior_options(args), config.prior, config.env))
    return prior.get("kind") == config.prior and _as_json(prior.get("options")) == _as_json(dataclasses.asdict(options))


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def seed_table(results: dict[str, list[list[dict[str, Any]]]]) -> tuple[list[list[str]], dict[str, Any]]:
    """Per label: final and area-under-curve eval return over seeds (mean [95% bootstrap CI], IQM;
    ``kl_rl.sweep_summary.summarize``) and the worst diagnostics (max KL, max critic gradient
    norm, min prior std)."""
    from kl_rl.sweep import expand
    from kl_rl.sweep_summary import format_ci, summarize

    rows, summary = [], {}
    for label, runs in results.items():
        worst = {name: _extreme(runs, name) for name in ("kl_max", "critic_grad_norm", "prior_std_min")}
        worst_cells = ["-" if np.isnan(worst[n]) else f"{worst[n]:.3g}" for n in worst]
        minutes = training_seconds(runs) / 60
        error = runs[0][-1].get("diverged") if runs[0] else None
        curve = mean_curve(runs)
        if error:  # no final return and no comparable area under the curve: the runs stopped early
            steps = runs[0][-1]["env_steps"]
            summary[label] = {"seeds": len(runs), "diverged": error, "diverged_at_env_steps": steps, **worst,
                              "train_minutes": minutes, "curve": curve}
            rows.append([label, len(runs), f"diverged at {steps:,} steps", "-", "-", "-", "-", *worst_cells,
                         f"{minutes:.0f}"])
            continue
        (record,) = summarize(expand(range(len(runs)), {}), runs)  # one grid point: every seed of the label
        final, auc = record["final"], record["auc"]
        success = {k: record[k] for k in ("success_final", "success_auc") if k in record}  # door
        final_evals = [seed_rows[-1].get("final_eval") for seed_rows in runs]
        per_seed = {"final_eval": final_evals} if all(final_evals) else {}
        summary[label] = {"seeds": len(runs), "final": final, "auc": auc, **success, **per_seed, **worst,
                          "train_minutes": minutes, "curve": curve}
        rows.append([label, final["n"], format_ci(final), f"{final['iqm']:.1f}", format_ci(auc), f"{auc['iqm']:.1f}",
                     final_eval_cell(summary[label], "mean"), *worst_cells, f"{minutes:.0f}"])
    return rows, summary


def mean_curve(runs: list[list[dict[str, Any]]]) -> dict[str, list[float]]:
    """The label's evaluation curve, mean over seeds: ``env_steps`` [K] and ``eval_return`` [K] (and
    ``eval_success`` [K] where the runs report one), over the evaluations every seed has (the seeds
    of a sweep share one schedule; a diverged label's stop where it stopped)."""
    from kl_rl.sweep_summary import eval_curve

    out: dict[str, list[float]] = {}
    for key in ("eval_return", "eval_success"):
        curves = [eval_curve(rows, key) for rows in runs]
        k = min((len(steps) for steps, _ in curves), default=0)
        if k == 0:
            continue
        out.setdefault("env_steps", [float(x) for x in curves[0][0][:k]])
        out[key] = [float(x) for x in np.mean([values[:k] for _, values in curves], axis=0)]
    return out


def training_seconds(runs: list[list[dict[str, Any]]]) -> float:
    """Seconds the label's program spent pretraining and training (its seeds run together, so the
    slowest seed's clock), kept across resumes by the run's metrics; compiling is not counted."""
    def clock(rows: list[dict[str, Any]]) -> float:
        return max((r.get("wall_seconds") or 0.0 for r in rows), default=0.0) + max(
            (r.get("pretrain_seconds") or 0.0 for r in rows), default=0.0)

    return max((clock(rows) for rows in runs), default=0.0)


SUMMARY_FIELDS = ("experiment", "env", "label", "seeds", "env_steps", "final_mean", "final_ci_low", "final_ci_high",
                  "auc_mean", "auc_ci_low", "auc_ci_high", "iqm_final", "success_final_mean", "success_final_ci_low",
                  "success_final_ci_high", "success_auc_mean", "success_auc_ci_low", "success_auc_ci_high",
                  "diverged_at_env_steps")


def summary_csv_path(args: argparse.Namespace) -> Path:
    """``results/summary.csv`` for the experiments' default output folders; inside ``--out``
    (and the quick mode's folder) otherwise, so tests and trials never touch the real table."""
    out = resolve_out(args)
    return ROOT / "results" / "summary.csv" if out == ROOT / "results" / args.experiment else out / "summary.csv"


def report_env(args: argparse.Namespace, experiment: str, env: str, results: dict[str, list[list[dict[str, Any]]]],
               figure: Path, title: str) -> tuple[list[list[str]], dict[str, Any]]:
    """One env's (or door source's) section of an RL experiment: ``seed_table``'s rows and
    summary, the summary's rows in ``results/summary.csv``, and the curves figure at ``figure``."""
    rows, summary = seed_table(results)
    update_summary_csv(args, experiment, env, summary, results)
    curves_and_diagnostics(results, figure, title)
    return rows, summary


def update_summary_csv(args: argparse.Namespace, experiment: str, env: str, summary: dict[str, Any],
                       results: dict[str, list[list[dict[str, Any]]]]) -> Path:
    """Writes ``seed_table``'s summary of one (experiment, env) into the machine-readable table,
    one row per label, replacing that (experiment, env, label)'s earlier row and keeping the
    others; rows sorted, the file replaced when complete."""
    import csv

    path = summary_csv_path(args)
    rows = {}
    if path.exists():
        with path.open(newline="") as f:
            rows = {(r["experiment"], r["env"], r["label"]): r for r in csv.DictReader(f)}
    for label, rec in summary.items():
        runs = results[label]
        row = {"experiment": experiment, "env": env, "label": label, "seeds": len(runs),
               "env_steps": runs[0][-1]["env_steps"] if runs and runs[0] else ""}
        if "diverged" in rec:
            row["diverged_at_env_steps"] = rec["diverged_at_env_steps"]
        else:
            row.update(final_mean=rec["final"]["mean"], final_ci_low=rec["final"]["ci_low"],
                       final_ci_high=rec["final"]["ci_high"], auc_mean=rec["auc"]["mean"],
                       auc_ci_low=rec["auc"]["ci_low"], auc_ci_high=rec["auc"]["ci_high"],
                       iqm_final=rec["final"]["iqm"])
            if "success_final" in rec:
                row.update(success_final_mean=rec["success_final"]["mean"],
                           success_final_ci_low=rec["success_final"]["ci_low"],
                           success_final_ci_high=rec["success_final"]["ci_high"],
                           success_auc_mean=rec["success_auc"]["mean"],
                           success_auc_ci_low=rec["success_auc"]["ci_low"],
                           success_auc_ci_high=rec["success_auc"]["ci_high"])
        rows[(experiment, env, label)] = row
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for key in sorted(rows):
            writer.writerow({k: rows[key].get(k, "") for k in SUMMARY_FIELDS})
    tmp.replace(path)
    if path == ROOT / "results" / "summary.csv":  # the real table: regenerate the README's headline from it
        from headline import update_readme

        update_readme(path, ROOT / "README.md")
    return path


def final_eval_cell(record: dict[str, Any], measure: str) -> str:
    """Each seed's final evaluation (its episodes' ``mean`` return, or ``success_rate``) and the
    episodes per seed, e.g. "46%, 56%, 62% (50 ep.)"; "-" for a label without one (or whose
    evaluations lack ``measure``)."""
    evals = record.get("final_eval")
    if not evals or any(measure not in e for e in evals):  # e.g. the quick toy's runs have no success
        return "-"
    cells = [f"{e[measure]:.0%}" if measure == "success_rate" else f"{e[measure]:.0f}" for e in evals]
    return f"{', '.join(cells)} ({evals[0]['episodes']} ep.)"


SEED_HEADER = ["algo", "seeds", "final: mean [95% CI]", "final IQM", "AUC: mean [95% CI]", "AUC IQM",
               "final eval per seed", "max KL", "max critic ‖∇‖", "min prior std", "train min"]


def _extreme(runs: list[list[dict[str, Any]]], name: str) -> float:
    """The worst value of a diagnostic over every epoch of every seed (inf counts; NaN when
    none was logged)."""
    values = np.array([r[name] for rows in runs for r in rows if r.get(name) is not None], dtype=float)
    if not values.size or np.isnan(values).all():
        return float("nan")
    return float(np.nanmin(values) if name.endswith("_min") else np.nanmax(values))


def curves_and_diagnostics(results: dict[str, list[list[dict[str, Any]]]], path: Path, title: str) -> Path:
    """Left: eval return per label (mean over seeds, 95% bootstrap band), and the eval success
    rate where the runs report one (door). Then KL mean, critic gradient norm and prior std min
    over training (mean over seeds, log scale)."""
    from kl_rl.plots import _save, plt
    from kl_rl.sweep_summary import plot_curve_bands

    panels = {"kl_mean": "|KL| estimate (mean)", "critic_grad_norm": "critic gradient norm",
              "prior_std_min": "prior std (min)"}
    success = any(r.get("eval_success") is not None for runs in results.values() for r in runs[0])
    curves = 2 if success else 1
    fig, axes = plt.subplots(1, curves + len(panels), figsize=(4.2 * (curves + len(panels)), 3.6), dpi=110)
    plot_curve_bands(axes[0], results)
    if success:
        plot_curve_bands(axes[1], results, "eval_success")
        axes[1].set(ylabel="deterministic eval success rate", ylim=(-0.02, 1.02))
    for color, runs in enumerate(results.values()):
        for ax, name in zip(axes[curves:], panels, strict=True):
            series = [[(r["env_steps"], r[name]) for r in rows if r.get(name) is not None] for rows in runs]
            if not series[0]:
                continue
            n = min(len(s) for s in series)
            x = np.array([p[0] for p in series[0][:n]])
            y = np.array([[p[1] for p in s[:n]] for s in series]).mean(0)
            ax.plot(x, np.abs(y) if name == "kl_mean" else y, color=f"C{color}", lw=1)
    axes[0].set(ylabel="deterministic eval return", title=title)
    axes[0].legend(fontsize=7)
    for ax, name in zip(axes[curves:], panels.values(), strict=True):
        ax.set_yscale("log")
        ax.set_title(name)
    for ax in axes:
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
