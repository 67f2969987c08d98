"""The results report's tables, generated from the experiments' JSON records (never edited by hand).

Every table of ``results/README.md`` drawn from a run sits between two marker lines::

    <!-- table: door/door.json sources.human columns=seeds,success_final,final_success [labels=nppac;sac] -->
    <!-- table:end -->

and is rendered from that section of an experiment's JSON (``harness.finish`` writes it from the
experiment's committed records at every invocation): one row per label (all of the section's, or
those of ``labels=``, ``;``-separated, in that order), one column per name of ``COLUMNS``.
Tables of other records (the pathology's rows, the variance's env x prior) sit between
``<!-- rows: <file> <path with * for every key> [every=N] columns=... -->`` and
``<!-- rows:end -->``, one column per name of ``ROW_COLUMNS``. The
plan table between ``<!-- plan:start -->`` and ``<!-- plan:end -->`` lists per task of ``PLAN``
the labels recorded, with their training minutes, and the planned ones still to run. The harness
calls ``update_report`` whenever an experiment rewrites its JSON under ``results/``, so a rerun
label updates the report as it updates ``results/summary.csv`` and the README's headline.

    python experiments/report.py [--report results/README.md] [--results results]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SEEDS as PLAN_SEEDS  # noqa: E402
from harness import markdown_table  # noqa: E402
from priors import LABELS as PRIOR_LABELS  # noqa: E402

from kl_rl.run_folder import write_text_atomic  # noqa: E402
from kl_rl.sweep_summary import format_ci  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TABLE = re.compile(r"<!-- table: (?P<file>\S+) (?P<section>\S+) columns=(?P<columns>\S+)"
                   r"(?: labels=(?P<labels>[^\n]+?))? -->\n(?P<body>.*?)<!-- table:end -->", re.S)
ROWS = re.compile(r"<!-- rows: (?P<file>\S+) (?P<section>\S+)(?: every=(?P<every>\d+))? columns=(?P<columns>\S+) -->\n"
                  r"(?P<body>.*?)<!-- rows:end -->", re.S)
PLAN_START, PLAN_END = "<!-- plan:start -->", "<!-- plan:end -->"
CURVE_STEPS = (0, 5_000, 10_000, 15_000, 50_000)  # "mean eval at": the evaluation nearest each


class MarkerError(ValueError):
    """A generated block's marker names something this module cannot render."""


def _magnitude(value: float | None) -> str:
    """A diagnostic's size, short: 4,300 / 43 / 0.154 / 1.2e16 / 5.5e-9; "-" when none was logged."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _ci(rec: dict[str, Any], key: str, digits: int) -> str:
    """``mean [ci_low, ci_high]`` of one measure; where the label diverged, the step it stopped at."""
    if "diverged" in rec:
        return f"diverged at {int(rec['diverged_at_env_steps']):,}"
    return format_ci(rec[key], digits) if key in rec else "-"


def _range(rec: dict[str, Any], key: str) -> str:
    """``mean [min, max]`` over seeds (the benchmarks' summaries record the range, not a CI)."""
    return f"{rec[f'{key}_mean']:.0f} [{rec[f'{key}_min']:.0f}, {rec[f'{key}_max']:.0f}]"


def _curve(rec: dict[str, Any], key: str, percent: bool) -> str:
    """The mean-over-seeds curve at the evaluations nearest ``CURVE_STEPS``; "-" past its end."""
    curve = rec.get("curve") or {}
    steps, values = curve.get("env_steps") or [], curve.get(key) or []
    if not values:
        return "-"
    spacing = steps[1] - steps[0] if len(steps) > 1 else 0.0
    cells = []
    for target in CURVE_STEPS:
        if target > steps[-1] + spacing / 2:
            cells.append("-")
            continue
        value = values[min(range(len(steps)), key=lambda i: abs(steps[i] - target))]
        cells.append(f"{value:.0%}" if percent else f"{value:.0f}")
    return " / ".join(cells)


def _final_eval(rec: dict[str, Any], success: bool) -> str:
    """Each seed's final many-episode evaluation: return mean ± standard error, or success rate."""
    evals = rec.get("final_eval")
    if not evals or (success and any("success_rate" not in e for e in evals)):
        return "-"
    cells = [f"{e['success_rate']:.0%}" if success else f"{e['mean']:.0f} ± {e['std_err']:.0f}" for e in evals]
    return f"{', '.join(cells)} ({evals[0]['episodes']} ep.)"


def _seeds(rec: dict[str, Any]) -> str:
    return str(rec.get("seeds") or rec.get("final", {}).get("n") or "-")


COLUMNS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "seeds": ("seeds", _seeds),
    "final": ("final return: mean [95% CI]", lambda r: _ci(r, "final", 0)),
    "auc": ("AUC: mean [95% CI]", lambda r: _ci(r, "auc", 0)),
    "success_final": ("final success: mean [95% CI]", lambda r: _ci(r, "success_final", 2)),
    "success_auc": ("success AUC: mean [95% CI]", lambda r: _ci(r, "success_auc", 2)),
    "curve": ("mean eval at 0 / 5k / 10k / 15k / 50k", lambda r: _curve(r, "eval_return", False)),
    "success_curve": ("mean success at 0 / 5k / 10k / 15k / 50k", lambda r: _curve(r, "eval_success", True)),
    "final_eval": ("final eval per seed (mean ± s.e.)", lambda r: _final_eval(r, False)),
    "final_success": ("final eval success per seed", lambda r: _final_eval(r, True)),
    "kl": ("max KL", lambda r: _magnitude(r.get("kl_max"))),
    "grad": ("max critic ‖∇‖", lambda r: _magnitude(r.get("critic_grad_norm"))),
    "std": ("min prior std", lambda r: _magnitude(r.get("prior_std_min"))),
    "train": ("train min", lambda r: f"{r['train_minutes']:.0f}" if "train_minutes" in r else "-"),
    "final_range": ("final: mean [min, max over seeds]", lambda r: _range(r, "final")),
    "auc_range": ("AUC: mean [min, max over seeds]", lambda r: _range(r, "auc")),
}


def _significant(value: float) -> str:
    """Four significant digits, thousands separated: 0.3208 / 99.84 / 1064 / 10,740 / 107,500."""
    return f"{float(f'{value:.4g}'):,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


# the other kind of block: one row per record of a list (every N-th) or of a "*"-keyed path, whose
# cells see the record and the keys its "*"s matched (variance: env, prior)
ROW_COLUMNS: dict[str, tuple[str, Callable[[dict[str, Any], list[str]], str]]] = {
    "sigma0": ("sigma0", lambda r, k: f"{r['sigma0']:.3g}"),
    "kl_closed": ("KL closed form", lambda r, k: _significant(r["kl_closed"])),
    "kl_estimate": ("KL estimate", lambda r, k: _significant(r["kl_estimate"])),
    "kl_tanh": ("KL, tanh policy", lambda r, k: _significant(r["kl_tanh"])),
    "grad_closed": ("‖∇KL‖ closed form", lambda r, k: _significant(r["grad_closed"])),
    "grad_estimate": ("‖∇KL‖ estimate", lambda r, k: _significant(r["grad_estimate"])),
    "env": ("env", lambda r, k: k[0]),
    "prior": ("prior", lambda r, k: k[-1]),
    "nll": ("held-out NLL", lambda r, k: f"{r['nll']:.3f}"),
    "std_near": ("std near", lambda r, k: f"{r['std_near']:.4f}"),
    "std_far": ("std far", lambda r, k: f"{r['std_far']:.4f}"),
    "far_near": ("far / near", lambda r, k: f"{r['std_far'] / r['std_near']:.2f}"),
    "mean_action_return": ("mean-action return", lambda r, k: f"{r['mean_action_return']['mean']:.0f}"),
    "fit_s": ("fit s", lambda r, k: f"{r['fit_seconds']:.0f}"),
}

RLPD = "rlpd@num_critics=2,utd=1"  # RLPD at what this CPU affords
PLANNED = ("nppac", "nppac+", "kl:mlp", "sac", RLPD)  # every task; the other priors and bc-sac on two
# (task, JSON under results/, section, the command that trains one of its labels, the labels the plan asks for)
PLAN: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    *((env, "priors/priors.json", f"envs.{env}", f"priors.py --envs {env} --labels <label>",
       PRIOR_LABELS if env in ("halfcheetah", "hopper") else PLANNED)
      for env in ("halfcheetah", "hopper", "walker2d", "ant")),
    ("door, shipped demonstrations", "door/door.json", "sources.shipped",
     "door.py --sources shipped --batch-size 256 --labels <label>", PRIOR_LABELS),
    ("door, DAPG's human demonstrations", "door/door.json", "sources.human",
     "door.py --sources human --batch-size 256 --labels <label>", (*PLANNED, "bc-sac")),
    ("one demonstration, halfcheetah", "single_demo/single_demo.json", "envs.halfcheetah",
     "single_demo.py --envs halfcheetah --demo-counts 1 --batch-size 256 --labels <algo>",
     ("nppac (1 demo)", "kl:mlp (1 demo)", "nppac (15 demos)", "kl:mlp (15 demos)")),
    ("one demonstration, door", "single_demo/single_demo.json", "envs.door",
     "single_demo.py --envs door --demo-counts 1 --pick best --batch-size 256 --labels <algo>",
     ("nppac (1 best demo)", "kl:mlp (1 best demo)", "nppac (25 demos)", "kl:mlp (25 demos)")),
)


def records_at(results: Path, file: str, path: str) -> list[tuple[list[str], dict[str, Any]]] | None:
    """Every record at ``path`` of ``results/<file>``: a list's items, or one per key a ``*`` in the
    path matches, each with the keys its ``*``s matched; None where the file or path is absent."""
    target = results / file
    if not target.exists():
        return None
    nodes: list[tuple[list[str], Any]] = [([], json.loads(target.read_text()))]
    for key in path.split("."):
        if key == "*":
            nodes = [([*keys, name], child) for keys, node in nodes if isinstance(node, dict)
                     for name, child in node.items()]
        else:
            nodes = [(keys, node[key]) for keys, node in nodes if isinstance(node, dict) and key in node]
    if not nodes:
        return None
    return [(keys, item) for keys, node in nodes for item in (node if isinstance(node, list) else [node])]


def render_rows(records: list[tuple[list[str], dict[str, Any]]] | None, columns: Sequence[str], every: int = 1,
                where: str = "") -> str:
    """One markdown row per record (every ``every``-th), one cell per name of ``ROW_COLUMNS``."""
    unknown = [c for c in columns if c not in ROW_COLUMNS]
    if unknown:
        raise MarkerError(f"unknown column {unknown[0]!r}{where}; choose from {', '.join(ROW_COLUMNS)}")
    if records is None:
        return f"No record{where} yet."
    rows = [[ROW_COLUMNS[c][1](rec, keys) for c in columns] for keys, rec in records[::every]]
    return markdown_table([ROW_COLUMNS[c][0] for c in columns], rows)


def section(results: Path, file: str, path: str) -> dict[str, dict[str, Any]] | None:
    """The labels' records at ``path`` (dot-separated keys) of ``results/<file>``; None where absent."""
    found = records_at(results, file, path)
    return found[0][1] if found else None


def render_table(records: dict[str, dict[str, Any]] | None, columns: Sequence[str],
                 labels: Sequence[str] | None = None, where: str = "") -> str:
    """One markdown row per label of ``records`` (or of ``labels``, in their order): ``algo``, then
    each of ``columns``; a label without a record says so."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise MarkerError(f"unknown column {unknown[0]!r}{where}; choose from {', '.join(COLUMNS)}")
    if records is None:
        return f"No record{where} yet."
    rows = []
    for label in labels or list(records):
        rec = records.get(label)
        rows.append([label, *(COLUMNS[c][1](rec) if rec is not None else "no record" for c in columns)])
    return markdown_table(["algo", *(COLUMNS[c][0] for c in columns)], rows)


def render_plan(results: Path) -> str:
    """Per task of ``PLAN``: its command, the labels recorded (training minutes, pretraining
    included; the seed count where it is not ``PLAN_SEEDS``; "diverged" where the run stopped on a
    non-finite metric) and the planned labels without a record."""
    def cell(label: str, rec: dict[str, Any]) -> str:
        notes = [f"{rec['seeds']} seeds"] if rec.get("seeds", PLAN_SEEDS) != PLAN_SEEDS else []
        notes += ["diverged"] if "diverged" in rec else []
        return f"{label} {rec['train_minutes']:.0f}" + (f" ({', '.join(notes)})" if notes else "")

    rows = []
    for task, file, path, command, planned in PLAN:
        records = section(results, file, path) or {}
        done = [cell(label, rec) for label, rec in records.items() if "train_minutes" in rec]
        missing = [label for label in planned if label not in records]
        rows.append([task, f"`{command}`", ", ".join(done) or "-", ", ".join(missing) or "none"])
    return markdown_table(["task", "command", "recorded (train min)", "still to run"], rows)


def render(text: str, results: Path = ROOT / "results") -> str:
    """``text`` with every table, rows and plan block rendered from ``results``."""
    def block(match: re.Match[str], body: str, end: str) -> str:
        marker = match[0][:match.start("body") - match.start()]
        return f"{marker}\n{body}\n\n{end}"

    def table(match: re.Match[str]) -> str:
        file, path, labels = match["file"], match["section"], match["labels"]
        body = render_table(section(results, file, path), match["columns"].split(","),
                            [x.strip() for x in labels.split(";")] if labels else None, f" at {file} ({path})")
        return block(match, body, "<!-- table:end -->")

    def rows(match: re.Match[str]) -> str:
        file, path = match["file"], match["section"]
        body = render_rows(records_at(results, file, path), match["columns"].split(","), int(match["every"] or 1),
                           f" at {file} ({path})")
        return block(match, body, "<!-- rows:end -->")

    text = ROWS.sub(rows, TABLE.sub(table, text))
    if PLAN_START in text and PLAN_END in text:
        head, rest = text.split(PLAN_START, 1)
        _, tail = rest.split(PLAN_END, 1)
        text = f"{head}{PLAN_START}\n\n{render_plan(results)}\n\n{PLAN_END}{tail}"
    return text


def update_report(report: Path = ROOT / "results" / "README.md", results: Path = ROOT / "results") -> bool:
    """Rewrites ``report``'s generated blocks from ``results`` (the file replaced when complete);
    False (the file left alone) where it has none."""
    text = report.read_text()
    if not TABLE.search(text) and not ROWS.search(text) and PLAN_START not in text:
        return False
    new = render(text, results)
    if new != text:
        write_text_atomic(report, new)
    return True


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, default=ROOT / "results" / "README.md")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="the folder the JSON paths are under")
    args = parser.parse_args(argv)
    if not args.report.exists():
        parser.exit(2, f"report: {args.report} does not exist; pass the report with --report\n")
    try:
        updated = update_report(args.report, args.results)
    except MarkerError as err:
        parser.exit(2, f"report: {err}\n")
    if not updated:
        parser.exit(2, f"report: {args.report} has no generated blocks; add '<!-- table: <file> <section> "
                    f"columns=<names> -->' and '<!-- table:end -->' lines (or {PLAN_START} and {PLAN_END})\n")
    print(f"report: rewrote the generated blocks of {args.report}")


if __name__ == "__main__":
    main()
