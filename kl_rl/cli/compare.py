"""``kl-rl compare``: several runs and sweeps on one figure, with a table of their results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro


@dataclass
class CompareArgs:
    """Learning curves of any mix of run folders, sweep folders and folders of sweeps on one
    figure, grouped by label (algo, kl:<prior>, plus the grid point), mean with a 95% bootstrap
    band over seeds and the demonstrations' mean return dashed (a success-rate panel for door);
    and a table of final return and area under the curve with CIs, as FIG.md and FIG.csv."""

    paths: Annotated[list[Path], tyro.conf.Positional]
    """Run folders, sweep folders (sweep.json), or folders holding sweep folders."""
    label: Annotated[list[str], tyro.conf.UseAppendAction] = field(default_factory=list)
    """A label per path, in order (repeat: --label ours --label baseline); default: each run's algo."""
    out: Path = Path("compare.png")
    """The figure; the table goes beside it as .md and .csv."""
    title: str = ""
    """Figure title (default: the env)."""


def compare(args: CompareArgs) -> int:
    from kl_rl.compare import CompareError, figure, load_groups, table_rows, write_table

    missing = [str(p) for p in args.paths if not p.is_dir()]
    if missing:
        raise CompareError(f"no such folder: {', '.join(missing)}")
    if args.out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise CompareError(f"--out {args.out}: give a .png, .pdf or .svg file")
    groups = load_groups(args.paths, args.label or None)
    rows = table_rows(groups)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    env = next(iter(groups.values())).env
    figure(groups, args.out, title=args.title or env)
    text = write_table(rows, args.out.with_suffix(".md"), args.out.with_suffix(".csv"))
    print(text)
    print(f"wrote {args.out}, {args.out.with_suffix('.md')} and {args.out.with_suffix('.csv')}")
    return 0
