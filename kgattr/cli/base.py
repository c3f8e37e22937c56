"""What every command shares: one-line errors, ``--debug``, and checks of option values.

Every failure of input, file or environment ends with ``kgattr: error: PLACE: WHAT`` on one line of stderr and
exit code 2, a usage error (unknown option, missing argument, bad value) too; a traceback only with ``--debug``
or ``KGATTR_DEBUG=1``. Exit code 1 stays for the findings of ``rules check`` and ``rules lint``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import sys
from enum import Enum
from typing import Literal, Optional

import typer
from typer.core import TyperGroup

from ..exceptions import KgattrError
from ..io.catalog import FORMATS

try:                                   # recent typer vendors click; older releases used click itself
    from typer._click import core as _click_core, exceptions as _click
    from typer._click.globals import get_current_context as click_context
except ImportError:
    from click import core as _click_core, exceptions as _click
    from click.globals import get_current_context as click_context

DEBUG = "kgattr.debug"                 # keys of ctx.meta, shared by every context of one command line
QUIET = "kgattr.quiet"


def one_line(error: BaseException) -> str:
    """The message of an error as one line: a kgattr error as it is, an OSError naming its path, anything else
    with its type and a hint to run with ``--debug``."""
    if isinstance(error, KgattrError):
        text = str(error)
    elif isinstance(error, OSError) and error.filename is not None:
        where = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else str(error.filename)
        text = f"{where}: {error.strerror or error}"
    else:
        text = f"{type(error).__name__}: {error} (run with --debug for the traceback)"
    return _flat(text)


def _flat(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text.strip())


class _Failure(_click.ClickException):
    exit_code = 2


def _place(ctx) -> str:
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(names)) or "kgattr"


class KgattrGroup(TyperGroup):
    """The root command: turns every error into one line on stderr and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (_click.ClickException, typer.Exit, typer.Abort, BrokenPipeError):     # a closed pipe: typer exits 1
            raise
        except Exception as e:
            if ctx.meta.get(DEBUG) or os.environ.get("KGATTR_DEBUG", "") not in ("", "0"):
                raise
            raise _Failure(one_line(e)) from e

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
        except _click.NoArgsIsHelpError as e:
            help_text = e.ctx.get_help()           # rich prints it itself and returns ""
            if help_text:
                typer.echo(help_text)
            code = e.exit_code
        except _click.UsageError as e:
            message = _flat(e.format_message()).replace("Value error, ", "")     # typer's wording of a Literal
            typer.echo(f"kgattr: error: {_place(e.ctx)}: {message}", err=True)
            code = e.exit_code
        except _click.ClickException as e:
            typer.echo(f"kgattr: error: {_flat(e.format_message())}", err=True)
            code = e.exit_code
        except typer.Abort:
            typer.echo("kgattr: error: aborted", err=True)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"kgattr {__version__}")
        raise typer.Exit()


def root_options(ctx: typer.Context,
                 debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error "
                                                                   "(or set KGATTR_DEBUG=1)."),
                 verbose: int = typer.Option(0, "--verbose", "-v", count=True, show_default=False,
                                             help="Log more: -v steps (INFO), -vv everything (DEBUG)."),
                 quiet: bool = typer.Option(False, "--quiet", "-q", help="Only results and errors: no progress, "
                                                                        "no summary lines on stderr; log errors only."),
                 version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                              help="Print the version and exit.")) -> None:
    """The root of the command line: its global options (the app's help text is the Typer's)."""
    if debug:
        ctx.meta[DEBUG] = True
    if quiet and verbose:
        raise typer.BadParameter("give --quiet or --verbose, not both", param_hint="--quiet")
    ctx.meta[QUIET] = quiet
    if quiet or verbose:
        logging.getLogger().setLevel(logging.ERROR if quiet else logging.INFO if verbose == 1 else logging.DEBUG)


def is_quiet() -> bool:
    """Whether the command line asked for ``--quiet``."""
    ctx = click_context(silent=True)
    return bool(ctx and ctx.meta.get(QUIET))


def progress() -> bool:
    """Whether long steps report progress: unless ``--quiet`` (bars on a terminal, lines elsewhere)."""
    return not is_quiet()


def note(text: str) -> None:
    """A summary line on stderr, left out with ``--quiet``."""
    if not is_quiet():
        typer.echo(text, err=True)


class PlainHelp(_click_core.HelpFormatter):
    """Help in click's plain form: ``KIND`` for an argument in the usage line, flags without a ``<bool>``."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        args = re.sub(r"\{(\w+)\}", lambda m: m[1].upper(), args)
        args = re.sub(r"\[(\w+)\]", lambda m: f"[{m[1].upper()}]", args)
        super().write_usage(prog, args, prefix)

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        rows = [(re.sub(r"^([\w.]+) <\S+>$", lambda m: m[1].upper(), first).replace(" <bool>", ""), second)
                for first, second in rows]
        super().write_dl(rows, col_max, col_spacing)


_click_core.Context.formatter_class = PlainHelp        # the help of every command of kgattr's command line


CatalogFormat = Optional[Literal[FORMATS]]             # the type of format_of_catalog()


def format_of_catalog(flag: str = "--format"):
    """The option naming the format of a catalog read (as :func:`~kgattr.io.catalog.read_catalog` takes it)."""
    return typer.Option(None, flag, show_default=False,
                        help=f"Format of the catalog read: {', '.join(FORMATS)} [default: by its extension, "
                             f"else its content].")


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def format_option(json_is: str | None = "json"):
    """``--output-format``, for a command that prints a table; its ``--json`` flag (if any) means ``json_is``."""
    return typer.Option(None, "--output-format", case_sensitive=False, show_default=False,
                        help="table, json (one list), jsonl (one object a line) or csv [default: table"
                             + (f"; {json_is} with --json]." if json_is else "]."))


def output_format(fmt: OutputFormat | None, as_json: bool, json_is: str = "json") -> str:
    """The format asked for by ``--output-format`` and ``--json`` (which may not disagree)."""
    if as_json and fmt not in (None, OutputFormat(json_is)):
        raise typer.BadParameter(f"--json means {json_is}; give one of the two", param_hint="--output-format")
    return json_is if as_json else (fmt or OutputFormat.table).value


def rounded(value, digits: int = 4):
    """``value`` with every float rounded (confidences read from float32 arrays carry noise such as
    0.014800000004470348)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def emit(records: list[dict], fmt: str) -> None:
    """Print ``records`` on stdout as one JSON list, JSON Lines or CSV (nested values as JSON), floats rounded."""
    import csv

    records = rounded(records)
    if fmt == "json":
        typer.echo(json.dumps(records, indent=1, ensure_ascii=False))
    elif fmt == "jsonl":
        for r in records:
            typer.echo(json.dumps(r, ensure_ascii=False))
    else:
        columns = list(dict.fromkeys(k for r in records for k in r))
        writer = csv.DictWriter(sys.stdout, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                          for k, v in r.items()} for r in records)


def console():
    """A rich Console for tables: as wide as the terminal, or unbounded when piped (no cut at 80 columns)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 100_000)


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that ``finally`` blocks run (temporary files removed) before exiting."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def within(low: float | None = None, high: float | None = None, *, open_low: bool = False,
           open_high: bool = False):
    """An option callback refusing NaN, infinities and values outside [low, high] (or an open end).

    Args:
        low, high: the bounds (None: unbounded on that side).
        open_low, open_high: leave that bound out of the interval.
    """
    interval = f"{'>' if open_low else '>='} {low}" if high is None else \
        f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"

    def check(value):
        if value is None:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number")
        if (low is not None and (value < low or (open_low and value == low))) or \
                (high is not None and (value > high or (open_high and value == high))):
            raise typer.BadParameter(f"{value} is not {'in ' if high is not None else ''}{interval}")
        return value
    return check


share = within(0, 1)                                   # a confidence or share: [0, 1]
rate = within(0, 1, open_high=True)                    # a share of products or cells to hide: [0, 1)
count = within(1)                                      # a number of things: >= 1
natural = within(0)                                    # seeds, 0-means-all counts: >= 0
finite = within()                                      # any finite number
