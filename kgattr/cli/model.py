"""`kgattr model ...`: look after model directories.

Exit codes: 0 intact; 1 when ``verify`` finds a damaged file; 2 when the directory is not a model of this format.
"""
from __future__ import annotations

from pathlib import Path

import typer

model_app = typer.Typer(help="Check model directories written by `kgattr train`.", no_args_is_help=True)


@model_app.command("verify")
def verify(model: Path = typer.Argument(..., help="Model directory.")):
    """Check every file's size and sha256 against the model's manifest; one line per damaged file, exit code 1.

    Example: kgattr model verify models/sample
    """
    from ..engine.modelfiles import read_manifest, verify as damaged

    problems = damaged(model)
    for line in problems:
        typer.echo(line)
    if problems:
        typer.echo(f"{len(problems)} damaged files in {model}; train it again", err=True)
        raise typer.Exit(1)
    files = read_manifest(model)
    typer.echo(f"{model}: ok ({len(files)} files, {sum(f['size'] for f in files.values()) / 1e6:.1f} MB, "
               f"sizes and sha256 as in the manifest)")
