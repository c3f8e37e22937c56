from pathlib import Path

import pytest
import typer.main

from kgattr.cli import app

README = (Path(__file__).parent.parent / "README.md").read_text()


def commands(group, prefix=()):
    click = typer.main.get_command(group) if not hasattr(group, "commands") else group
    for name, cmd in click.commands.items():
        if hasattr(cmd, "commands"):
            yield from commands(cmd, prefix + (name,))
        else:
            yield " ".join(prefix + (name,)), cmd


@pytest.mark.parametrize("name, cmd", list(commands(app)), ids=lambda x: x if isinstance(x, str) else "")
def test_every_command_documented(name, cmd):
    assert f"kgattr {name}" in README
    assert cmd.help and "Example:" in cmd.help
