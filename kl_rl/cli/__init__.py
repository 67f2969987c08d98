"""Command line: ``kl-rl train | demos | demos import | fit-prior | sweep | evaluate | compare |
render``, one module per command, each a thin layer over library functions. Each option's help text
is its field's docstring."""

from __future__ import annotations

import sys

import tyro

from kl_rl.cli.compare import CompareArgs, compare
from kl_rl.cli.demos import DemosArgs, demos
from kl_rl.cli.demos_import import DemosImportArgs, demos_import
from kl_rl.cli.evaluate import EvaluateArgs, evaluate
from kl_rl.cli.fit_prior import FitPriorArgs, fit_prior
from kl_rl.cli.render import RenderArgs, render
from kl_rl.cli.sweep import SweepArgs, sweep
from kl_rl.cli.train import TrainArgs, train
from kl_rl.run_folder import DiskFullError

COMMANDS = {"train": TrainArgs, "demos": DemosArgs, "demos-import": DemosImportArgs, "fit-prior": FitPriorArgs,
            "sweep": SweepArgs, "evaluate": EvaluateArgs, "compare": CompareArgs,
            "render": RenderArgs}
HANDLERS = {TrainArgs: train, DemosArgs: demos, DemosImportArgs: demos_import, FitPriorArgs: fit_prior,
            SweepArgs: sweep, EvaluateArgs: evaluate, CompareArgs: compare,
            RenderArgs: render}


def main(argv: list[str] | None = None) -> int:
    """Runs a subcommand. Bad input is one line on stderr and exit code 2; ``--debug`` (anywhere
    on the line) shows the full traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if argv[:2] == ["demos", "import"]:  # `kl-rl demos import PATH`: the demos-import command
        argv = ["demos-import", *argv[2:]]
    args = tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv, prog="kl-rl")
    try:
        return HANDLERS[type(args)](args)
    except KeyboardInterrupt as err:  # Ctrl-C: the loop checkpointed the last finished epoch
        if debug:
            raise
        print(f"kl-rl: {err or 'interrupted'}", file=sys.stderr)
        return 130
    except (ValueError, FileExistsError, FileNotFoundError, DiskFullError) as err:  # DemosError, PriorError, ...
        if debug:
            raise
        message = " ".join(str(err).split())  # one line, whatever the exception's text
        print(f"kl-rl: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 2
