"""The manual is run, not only read.

Every `kgattr ...` line of a fenced shell block in README.md and docs/*.md runs, in the order of its page,
against the demo's files in a scratch folder (the sample catalog, its induced ontology, the example ontology, a
small model and extractor on the tiny test encoder) and must exit 0, or the code its `# exit N` comment states.
Lines on the real catalogs in ../shared, and lines that use what those wrote, take minutes to hours: they are
parsed (the command and its options must exist) and skipped with that reason. The demo's own steps are
read from the Makefile and build those files. Python blocks run too.
"""
from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from kgattr.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "shell", "bash", "console"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
PREFIX = {"time", "/usr/bin/time", "-v"}                  # wrappers a shown command may carry
OUTPUTS = {"-o", "--out", "--output", "--report"}
REAL = "reads a real catalog in ../shared (minutes to hours)"
TRAINS = "trains a model (the slow tests run those of the manual)"
USES_SKIPPED = "reads what a command not run wrote"
# commands that read text through an encoder get the tiny test one (and one short epoch where they train)
ENCODED = {("train",): ["--epochs", "1"], ("evaluate",): ["--epochs", "1"],
           ("extract", "train"): ["--max-windows", "200"], ("extract", "evaluate"): ["--max-windows", "200"],
           ("encode",): []}

runner = CliRunner()


@dataclass
class Shown:
    page: str
    line: int
    args: list[str]
    exit_code: int

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: kgattr {shlex.join(self.args)}"


def blocks(path: Path, languages: set[str]) -> list[tuple[int, str]]:
    """(line number of the block's first line, body) of each fenced block in one of ``languages``."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text)
            if m.group(1) in languages]


def shown_commands(path: Path) -> list[Shown]:
    found = []
    for first, body in blocks(path, SHELL):
        lines = body.replace("\\\n", "  \n").split("\n")    # a continued command keeps its first line's number
        for n, line in enumerate(lines):
            words = shlex.split(line, comments=True)
            while words and (words[0] in PREFIX or re.fullmatch(r"[A-Z_]+=\S*", words[0])):
                words.pop(0)
            if words[:1] == ["kgattr"]:
                code = re.search(r"#\s*exits?\s+(\d+)", line)
                found.append(Shown(path.name, first + n, words[1:], int(code.group(1)) if code else 0))
    return found


def _skipped(all_shown: list[Shown], trains: bool) -> dict[int, str]:
    """id(command) -> why it is not run: it reads ../shared, trains (unless ``trains``), or reads what a command
    not run wrote."""
    why, tainted = {}, set()
    for c in all_shown:
        if any("../shared" in a for a in c.args):
            why[id(c)] = REAL
        elif any(a == t or a.startswith(t) for a in c.args for t in tainted):
            why[id(c)] = USES_SKIPPED
        elif not trains and _command(list(c.args))[2] in ENCODED and "--model" not in c.args and c.args not in DEMO:
            why[id(c)] = TRAINS
        if id(c) in why:
            tainted.update(b for a, b in zip(c.args, c.args[1:]) if a in OUTPUTS)
    return why


def _command(args: list[str]):
    """(click command, its own arguments, the words naming it) for a command line, or an assertion error."""
    cmd, path = typer.main.get_command(app), []
    while hasattr(cmd, "commands"):
        assert args and args[0] in cmd.commands, f"no command `kgattr {' '.join(path + args[:1])}`"
        path.append(args[0])
        cmd, args = cmd.commands[args[0]], args[1:]
    return cmd, args, tuple(path)


def invoke(args: list[str]) -> tuple[int, str]:
    from kgattr.exceptions import KgattrError

    try:
        result = runner.invoke(app, args, catch_exceptions=False)
    except KgattrError as e:                   # main() prints these as one line and exits 2
        return 2, f"kgattr: error: {e}"
    return result.exit_code, result.output


def make_recipe(target: str) -> list[list[str]]:
    """The kgattr command lines of a Makefile target, its variables filled in."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    variables = dict(re.findall(r"^(\w+) :?= (.*)$", text, re.M))
    recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    recipe = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), recipe)
    lines = [shlex.split(line) for line in recipe.splitlines()]
    return [words[1:] for words in lines if words and words[0].endswith("/kgattr")]


DEMO = make_recipe("demo") + make_recipe("demo-extract")
ALL = {p.name: shown_commands(p) for p in PAGES}
SHOWN = [c for page in ALL.values() for c in page]
SKIPPED = {False: _skipped(SHOWN, trains=False), True: _skipped(SHOWN, trains=True)}


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory, tiny_bert):
    """(work folder, its pristine copy): the repository's files after `make demo` and `make demo-extract`, run on
    the tiny encoder. Each page runs in the work folder itself, restored first, so that every path a model
    recorded stays true."""
    root = tmp_path_factory.mktemp("demo")
    work, pristine = root / "work", root / "pristine"
    for name in ("data/sample.jsonl", "ontology/sample.ttl"):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, work / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        for args in DEMO:
            code, output = invoke(_with_test_encoder(args, tiny_bert))
            assert code == 0, f"make demo: kgattr {shlex.join(args)}:\n{output}"
    shutil.copytree(work, pristine)
    return work, pristine


def _with_test_encoder(args: list[str], encoder: str) -> list[str]:
    _, own, name = _command(list(args))
    if name not in ENCODED or "--model" in own:
        return args
    extra = [] if "--epochs" in own else ENCODED[name]
    return [*args, "--text-model", encoder, *extra]


def _fresh(demo_files, monkeypatch) -> None:
    work, pristine = demo_files
    shutil.rmtree(work)
    shutil.copytree(pristine, work)
    monkeypatch.chdir(work)


def _run_page(page: str, skipped: dict[int, str], encoder: str) -> None:
    for shown in ALL[page]:
        cmd, own, _ = _command(list(shown.args))
        cmd.make_context(f"kgattr {' '.join(shown.args[:len(shown.args) - len(own)])}", list(own))
        if id(shown) in skipped or shown.args in DEMO:      # the demo's own steps have run already
            continue
        code, output = invoke(_with_test_encoder(shown.args, encoder))
        assert code == shown.exit_code, f"{shown} exited {code}:\n{output[-2000:]}"


@pytest.mark.parametrize("page", ALL)
def test_shown_commands_run(page, demo_files, tiny_bert, monkeypatch):
    """Commands that train a model are left to the slow test below, and so are those that read their output."""
    _fresh(demo_files, monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")
    _run_page(page, SKIPPED[False], tiny_bert)


@pytest.mark.slow
@pytest.mark.parametrize("page", [page for page, shown in ALL.items()
                                  if any(SKIPPED[False].get(id(c)) != SKIPPED[True].get(id(c)) for c in shown)])
def test_shown_commands_run_with_training(page, demo_files, tiny_bert, monkeypatch):
    _fresh(demo_files, monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")
    _run_page(page, SKIPPED[True], tiny_bert)


LONG = [pytest.param(c, id=str(c), marks=pytest.mark.slow) for c in SHOWN if id(c) in SKIPPED[True]]


@pytest.mark.parametrize("shown", LONG)
def test_long_commands_are_listed(shown):
    pytest.skip(f"{SKIPPED[True][id(shown)]}; its command and options are checked by test_shown_commands_run")


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, {"python"})], ids=lambda p: p.name)
def test_shown_python_runs(page, demo_files, monkeypatch):
    _fresh(demo_files, monkeypatch)
    for _, body in blocks(page, {"python"}):
        exec(compile(body, page.name, "exec"), {})


def commands(group, prefix=()):
    click = typer.main.get_command(group) if not hasattr(group, "commands") else group
    for name, cmd in click.commands.items():
        if hasattr(cmd, "commands"):
            yield from commands(cmd, prefix + (name,))
        else:
            yield " ".join(prefix + (name,)), cmd


MANUAL = "\n".join(p.read_text() for p in PAGES)


@pytest.mark.parametrize("name, cmd", list(commands(app)), ids=lambda x: x if isinstance(x, str) else "")
def test_every_command_documented(name, cmd):
    assert f"kgattr {name}" in MANUAL
    assert cmd.help and "Example:" in cmd.help


def _example(cmd) -> list[str]:
    return shlex.split(" ".join(cmd.help.split("Example:", 1)[1].split()))[1:]


EXAMPLES = {name: _example(cmd) for name, cmd in commands(app)}
# an example that needs another one run first, in the same folder
BEFORE = {"rules remove": "rules add"}
NOT_RUN = {"rules test": "names a placeholder RULE_ID",
           "serve": "starts a server that runs until stopped (tests/test_serve_api.py covers it)",
           "score": "reads predictions of the split's hidden cells, which no other example writes",
           "bench-scale": "trains twice a size in subprocesses, minutes (tests/test_scale.py covers its parts)"}


@pytest.mark.parametrize("name", EXAMPLES)
def test_help_example_runs(name, demo_files, tiny_bert, monkeypatch):
    """`kgattr COMMAND --help` ends with an example that works on the demo's files."""
    args = EXAMPLES[name]
    cmd, own, _ = _command(list(args))
    cmd.make_context(f"kgattr {name}", list(own))
    shown = Shown("help", 0, args, 0)
    why = NOT_RUN.get(name) or _skipped([shown], trains=False).get(id(shown))
    if why:
        pytest.skip(why)
    _fresh(demo_files, monkeypatch)
    for step in (EXAMPLES[BEFORE[name]], args) if name in BEFORE else (args,):
        code, output = invoke(_with_test_encoder(step, tiny_bert))
        assert code == 0, f"kgattr {shlex.join(step)} exited {code}:\n{output[-2000:]}"


def test_no_development_history():
    pattern = re.compile(r"\bstops? [0-9]+\b", re.I)
    files = [*PAGES, ROOT / "CHANGELOG.md", *sorted((ROOT / "kgattr").rglob("*.py"))]
    hits = [f"{f.name}:{n}" for f in files for n, line in enumerate(f.read_text().splitlines(), 1)
            if pattern.search(line)]
    assert not hits


def test_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
