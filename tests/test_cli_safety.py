"""The command line never overwrites an input, writes a run's outputs as one set, loses no concurrent rule edit,
and ends every failure with one line `kgattr: error: PLACE: WHAT` (exit 2)."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kgattr import write_catalog
from kgattr.cli.main import app
from kgattr.ontology.files import load_ontology, save_ontology
from kgattr.ontology.mining import induce_ontology

runner = CliRunner()


def cli(*args, env=None):
    """(exit code, stdout, stderr) of the command line run in-process, errors handled as by the `kgattr` script."""
    result = runner.invoke(app, [str(a) for a in args], env=env)
    return result.exit_code, result.stdout, result.stderr


def digests(*paths) -> dict:
    """sha256 of every file under ``paths`` (a file or a directory), by path."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def saved_model(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("safety") / "model"
    fitted.save(path)
    return path


@pytest.fixture()
def ws(tmp_path, catalog, saved_model):
    """A workspace: the catalog, an ontology, a copy of the model, an empty folder."""
    write_catalog(catalog, tmp_path / "c.jsonl")
    save_ontology(induce_ontology(catalog), tmp_path / "o.ttl")
    shutil.copytree(saved_model, tmp_path / "M")
    (tmp_path / "dir").mkdir()
    return tmp_path


def _link(ws, kind):
    link = ws / f"{kind}.jsonl"
    (os.symlink if kind == "sym" else os.link)(ws / "c.jsonl", link)
    return link


def _catalog_in(ws, folder, name):
    (ws / folder).mkdir()
    os.link(ws / "c.jsonl", ws / folder / name)
    return ws / folder


# (id, arguments with {ws} for the workspace, text the one stderr line must hold)
IMPUTE = ["impute", "{ws}/c.jsonl", "--model", "{ws}/M"]
CASES = [
    ("impute -o catalog", IMPUTE + ["-o", "{ws}/c.jsonl"], "--output {ws}/c.jsonl: would overwrite the input catalog"),
    ("impute -o ./x/../catalog", IMPUTE + ["-o", "{ws}/dir/../c.jsonl"], "--output {ws}/dir/../c.jsonl: would overwrite"),
    ("impute -o symlink", IMPUTE + ["-o", "@sym"], "--output {ws}/sym.jsonl: would overwrite the input catalog"),
    ("impute -o hard link", IMPUTE + ["-o", "@hard"], "--output {ws}/hard.jsonl: would overwrite the input catalog"),
    ("impute --cells catalog", IMPUTE + ["-o", "{ws}/o.jsonl", "--cells", "{ws}/c.jsonl"], "--cells {ws}/c.jsonl: would"),
    ("impute --review catalog", IMPUTE + ["-o", "{ws}/o.jsonl", "--review", "{ws}/c.jsonl"], "--review {ws}/c.jsonl:"),
    ("impute --cells = --review", IMPUTE + ["-o", "{ws}/o.jsonl", "--cells", "{ws}/x", "--review", "{ws}/./x"],
     "--review {ws}/x: is also the output of --cells"),
    ("impute --cells ontology", IMPUTE + ["-o", "{ws}/o.jsonl", "--ontology", "{ws}/o.ttl", "--cells", "{ws}/o.ttl"],
     "--cells {ws}/o.ttl: would overwrite the ontology"),
    ("impute -o model file", IMPUTE + ["-o", "{ws}/M/config.json"], "--output {ws}/M/config.json: lies inside the model"),
    ("impute -o model dir", IMPUTE + ["-o", "{ws}/M"], "--output {ws}/M: is a directory"),
    ("impute -o directory", IMPUTE + ["-o", "{ws}/dir"], "--output {ws}/dir: is a directory"),
    ("impute -o read-only", IMPUTE + ["-o", "@readonly"], "--output {ws}/ro.jsonl: is read-only"),
    ("impute -o under a file", IMPUTE + ["-o", "{ws}/c.jsonl/x.jsonl"], "{ws}/c.jsonl is not a directory"),
    ("impute nan", IMPUTE + ["-o", "{ws}/o.jsonl", "--min-confidence", "nan"], "impute: Invalid value for '--min-confidence'"),
    ("impute 1.5", IMPUTE + ["-o", "{ws}/o.jsonl", "--min-confidence", "1.5"], "'--min-confidence': 1.5 is not in [0, 1]"),
    ("impute precision 0", IMPUTE + ["-o", "{ws}/o.jsonl", "--precision", "0"], "'--precision': 0.0 is not in (0, 1]"),
    ("impute both", IMPUTE + ["-o", "{ws}/o.jsonl", "--precision", "0.9", "--min-confidence", "0.5"],
     "give --precision or --min-confidence, not both"),
    ("impute unknown option", IMPUTE + ["-o", "{ws}/o.jsonl", "--nope"], "impute: No such option: --nope"),
    ("impute no output", IMPUTE, "impute: Missing option '--output'"),
    ("ontology induce -o catalog", ["ontology", "induce", "{ws}/c.jsonl", "-o", "{ws}/c.jsonl"],
     "--output {ws}/c.jsonl: would overwrite the input catalog"),
    ("ontology induce nan", ["ontology", "induce", "{ws}/c.jsonl", "-o", "{ws}/x.ttl", "--max-unseen", "nan"],
     "'--max-unseen': nan is not a finite number"),
    ("graph build -o dir holding catalog", ["graph", "build", "{ws}/c.jsonl", "-o", "@folder:g/nodes.json"],
     "--output {ws}/g/nodes.json: would overwrite the input catalog"),
    ("split -o dir holding catalog", ["split", "{ws}/c.jsonl", "-o", "@folder:s/train.jsonl"],
     "--out {ws}/s/train.jsonl: would overwrite the input catalog"),
    ("split rate 1", ["split", "{ws}/c.jsonl", "-o", "{ws}/s", "--mask-rate", "1"], "'--mask-rate': 1.0 is not in [0, 1)"),
    ("split count 0", ["split", "{ws}/c.jsonl", "-o", "{ws}/s", "--min-count", "0"], "'--min-count': 0 is not >= 1"),
    ("sample -o directory", ["sample", "-o", "{ws}/dir"], "--output {ws}/dir: is a directory"),
    ("evaluate --report holding catalog", ["evaluate", "{ws}/c.jsonl", "--report", "@folder:r/report.json"],
     "--report {ws}/r/report.json: would overwrite the input catalog"),
    ("extract run -o catalog", ["extract", "run", "{ws}/c.jsonl", "--model", "{ws}/dir", "-o", "{ws}/c.jsonl"],
     "--out {ws}/c.jsonl: would overwrite the input catalog"),
    ("extract run -o in extractor", ["extract", "run", "{ws}/c.jsonl", "--model", "{ws}/M", "-o", "{ws}/M/x.jsonl"],
     "--out {ws}/M/x.jsonl: lies inside the extractor"),
    ("rules add into a directory", ["rules", "add", "required", "--attribute", "brand", "--ontology", "{ws}/dir"],
     "--ontology {ws}/dir: is a directory"),
    ("rules add read-only", ["rules", "add", "required", "--attribute", "brand", "--ontology", "@readonly-ttl"],
     "--ontology {ws}/ro.ttl: is read-only"),
    ("rules add unwritable folder", ["rules", "add", "required", "--attribute", "brand", "--ontology", "@locked/o.ttl"],
     "--ontology {ws}/locked/o.ttl: the folder {ws}/locked is not writable"),
    ("rules remove read-only", ["rules", "remove", "x", "--ontology", "@readonly-ttl"], "--ontology {ws}/ro.ttl: is read-only"),
    ("rules add --min nan", ["rules", "add", "range", "--attribute", "year", "--min", "nan", "--ontology", "{ws}/o.ttl"],
     "'--min': nan is not a finite number"),
    ("complete --catalog directory", ["complete", "--model", "{ws}/M", "--sku", "x", "--catalog", "{ws}/dir"],
     "{ws}/dir: is a directory"),
]


def _prepare(ws, token: str) -> str:
    """A path argument; ``@name`` builds the situation it names in the workspace first."""
    if not token.startswith("@"):
        return token.format(ws=ws)
    name = token[1:]
    if name in ("sym", "hard"):
        return str(_link(ws, name))
    if name in ("readonly", "readonly-ttl"):
        path = ws / ("ro.jsonl" if name == "readonly" else "ro.ttl")
        shutil.copy(ws / ("c.jsonl" if name == "readonly" else "o.ttl"), path)
        path.chmod(0o444)
        return str(path)
    if name == "locked/o.ttl":
        (ws / "locked").mkdir()
        shutil.copy(ws / "o.ttl", ws / "locked" / "o.ttl")
        (ws / "locked").chmod(0o555)
        return str(ws / "locked" / "o.ttl")
    folder, file = name.removeprefix("folder:").split("/")          # a folder holding the catalog as FILE
    return str(_catalog_in(ws, folder, file))


@pytest.mark.parametrize("args, place", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_one_line_and_inputs_unchanged(ws, args, place):
    argv = [_prepare(ws, a) for a in args]
    before = digests(ws)
    modes = {f: os.stat(f).st_mode for f in before}
    try:
        code, out, err = cli(*argv)
    finally:
        if (ws / "locked").exists():
            (ws / "locked").chmod(0o755)
    assert code == 2, (out, err)
    assert len(err.splitlines()) == 1 and err.startswith("kgattr: error: "), err
    assert place.format(ws=ws) in err
    assert digests(ws) == before
    assert {f: os.stat(f).st_mode for f in before} == modes
    assert not list(ws.rglob("*.kgattr-tmp"))


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(ws, monkeypatch):
    import kgattr.io.catalog

    def boom(path, format=None):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(kgattr.io.catalog, "read_catalog", boom)
    args = ["ontology", "induce", ws / "c.jsonl", "-o", ws / "x.ttl"]
    code, _, err = cli(*args)
    assert code == 2
    assert err == "kgattr: error: RuntimeError: boom second line (run with --debug for the traceback)\n"
    result = runner.invoke(app, ["--debug", *map(str, args)])
    assert isinstance(result.exception, RuntimeError)
    result = runner.invoke(app, list(map(str, args)), env={"KGATTR_DEBUG": "1"})
    assert isinstance(result.exception, RuntimeError)
    assert not (ws / "x.ttl").exists()


def test_rule_findings_keep_exit_1(ws):
    assert cli("rules", "add", "pattern", "--attribute", "brand", "--regex", "^ZZZ", "--ontology", ws / "o.ttl")[0] == 0
    code, _, err = cli("rules", "check", ws / "c.jsonl", "--ontology", ws / "o.ttl")
    assert code == 1 and "values break a rule" in err


def test_rule_edits_keep_the_file_mode_and_follow_symlinks(ws):
    path = ws / "o.ttl"
    path.chmod(0o640)
    os.symlink(path, ws / "current.ttl")
    assert cli("rules", "add", "required", "--attribute", "brand", "--ontology", ws / "current.ttl")[0] == 0
    assert (ws / "current.ttl").is_symlink() and "required/all/brand" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o640


def test_impute_outputs_replace_each_other_as_a_set(ws):
    out = ws / "out" / "f.jsonl"
    assert cli(*[a.format(ws=ws) for a in IMPUTE], "-o", out, "--min-confidence", "0.9")[0] == 0
    first = digests(ws / "out")
    assert len(first) == 3
    assert cli(*[a.format(ws=ws) for a in IMPUTE], "-o", out, "--min-confidence", "0")[0] == 0
    second = digests(ws / "out")
    assert set(second) == set(first) and all(second[f] != first[f] for f in first)


def test_impute_refuses_while_another_writes_the_output(ws):
    from filelock import FileLock

    from kgattr.io.outputs import _lock_file

    out = ws / "f.jsonl"
    with FileLock(_lock_file(out)):                 # another process's hold: a lock of its own
        code, _, err = cli(*[a.format(ws=ws) for a in IMPUTE], "-o", out)
    assert code == 2 and err == f"kgattr: error: {out}: another kgattr command is writing it now\n"
    assert not out.exists()


# ---- subprocesses: concurrent edits, kill -9 and SIGTERM while writing ---------------------------------------------
def test_two_concurrent_rule_edits_both_land(ws):
    edits = [["required", "--attribute", "brand"], ["pattern", "--attribute", "brand", "--regex", "^[A-Z]"]]
    procs = [subprocess.Popen([sys.executable, "-m", "kgattr", "rules", "add", *e, "--ontology", str(ws / "o.ttl")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for e in edits]
    added = set()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        added.add(out.split()[1])                   # "added RULE_ID to FILE:"
    assert len(added) == 2 and added <= load_ontology(ws / "o.ttl").rule_ids()


PAUSED = """
import sys, time
import kgattr.io.writers as c
real = c.write_lines
def paused(f, records):
    real(f, records)
    if ".review.jsonl." in f.name:                   # every file of the set begun, none renamed
        print("written", flush=True)
        time.sleep(300)
c.write_lines = paused
sys.argv = ["kgattr", *sys.argv[1:]]
from kgattr.cli.main import main
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_impute_leaves_the_previous_outputs(ws, sig):
    out = ws / "out" / "f.jsonl"
    args = [a.format(ws=ws) for a in IMPUTE] + ["-o", str(out)]
    assert cli(*args, "--min-confidence", "0.9")[0] == 0
    before = digests(ws / "out")
    proc = subprocess.Popen([sys.executable, "-c", PAUSED, *args, "--min-confidence", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written", proc.stderr.read()
        assert len(list(out.parent.glob("*.kgattr-tmp"))) == 3
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 128 + signal.SIGTERM)
    left = list(out.parent.glob("*.kgattr-tmp"))
    assert len(left) == (3 if sig == signal.SIGKILL else 0)       # kill -9 runs no cleanup; SIGTERM does
    assert {f: d for f, d in digests(ws / "out").items() if not f.endswith(".kgattr-tmp")} == before
    assert cli(*args, "--min-confidence", "0")[0] == 0             # the next write sweeps what a killed one left
    assert not list(out.parent.glob("*.kgattr-tmp"))
