"""Habits of the command line: --version, -q/-v, plain help with defaults, one JSON shape, choices checked."""
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kgattr import __version__
from kgattr.cli import app

runner = CliRunner()


def kgattr(*args):
    return subprocess.run([sys.executable, "-m", "kgattr", *map(str, args)], capture_output=True, text=True)


def test_version():
    result = kgattr("--version")
    assert (result.returncode, result.stdout) == (0, f"kgattr {__version__}\n")


@pytest.mark.parametrize("command", [["rules", "add"], ["train"], ["impute"], ["rules", "lint"], ["complete"],
                                     ["rules", "suggest"], ["extract", "train"]])
def test_help_is_plain_with_defaults(command):
    text = runner.invoke(app, [*command, "--help"]).output
    assert "<bool>" not in text and "{" not in text and "╭" not in text, text
    if command == ["rules", "add"]:
        assert "Who adds it [default: expert: $USER]." in text and "Usage: root rules add [OPTIONS] KIND" in text
    if command == ["train"]:
        assert "[default: 48]" in text and "[default: 3]" in text


@pytest.fixture(scope="module")
def ontology(tmp_path_factory, catalog):
    from kgattr import Ontology

    path = tmp_path_factory.mktemp("conventions") / "onto.ttl"
    Ontology.induce(catalog).save(path)
    return path


def test_quiet_hides_summary_lines(ontology):
    loud, quiet = kgattr("rules", "lint", ontology), kgattr("-q", "rules", "lint", ontology)
    assert loud.returncode == quiet.returncode == 0
    assert "errors" in loud.stderr and quiet.stderr == ""
    both = kgattr("-q", "-v", "rules", "lint", ontology)
    assert both.returncode == 2 and both.stderr.count("\n") == 1 and "--quiet" in both.stderr
