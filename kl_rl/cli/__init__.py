"""Command line: ``kl-rl train | demos | demos import | fit-prior | sweep | evaluate | compare |
render``, one module per command, each a thin layer over library functions. Each option's help text
is its field's docstring."""

from __future__ import annotations

import contextlib
import io
import os
import re
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
    try:
        args = _parse(argv)
    except _ParseError as err:
        print(f"kl-rl: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `kl-rl train --help | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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


class _ParseError(Exception):
    """tyro refused the command line; the message is its report in one line."""


def _parse(argv: list[str]) -> object:
    """Parses ``argv`` with tyro; its boxed, many-line report of a typo'd option, a bad value or a
    missing argument becomes one line (``--help`` still prints in full)."""
    report = io.StringIO()
    try:
        with contextlib.redirect_stderr(report):
            return tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv, prog="kl-rl")
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        command = argv[0] if argv and argv[0] in COMMANDS else None
        raise _ParseError(one_line_report(report.getvalue(), command)) from None


def one_line_report(text: str, command: str | None = None) -> str:
    """tyro's error report (a title, then sections between rules) as one line: what is wrong, the
    option tyro suggests for this command, and which help lists the options."""
    sections: list[list[str]] = [[]]
    for line in text.splitlines():  # plain text, or rich's box when stderr is a terminal
        line = " ".join(re.sub("[\u2502\u256d\u256e\u256f\u2570]", " ", line).split())
        if re.fullmatch(r"[-\u2500]{8,}", line):
            sections.append([])
        elif line.strip("\u2500 "):
            sections[-1].append(line.strip("\u2500 "))
    sections = [lines for lines in sections if lines]
    where = f"kl-rl {command} --help" if command else "kl-rl --help"
    if not sections:
        return f"could not read the command line ({where} lists the options)"
    (title, *message), *rest = sections
    message = [re.sub(r"<class '\w+'>: ", "", line) for line in message
                if "('None',)" not in line and not line.startswith(("Arguments are applied", "matter."))]
    text = " ".join(message) if message else title
    if message and not message[0].lower().startswith(title.lower()[:10]):
        text = f"{title.lower()}: {text}"
    for lines in rest:
        if lines[0].startswith("Perhaps you meant") and command:
            flags = [(line.split()[0], lines[j + 1:]) for j, line in enumerate(lines) if line.startswith("--")]
            for flag, after in flags:
                if any(line == f"in kl-rl {command} --help" for line in after[:4]):
                    text += f"; did you mean {flag}?"
                    break
        elif lines[0].startswith("Available subcommands"):
            text += f"; {lines[0][0].lower()}{' '.join(lines)[1:]}"
    return f"{text} ({where} lists the options)"
