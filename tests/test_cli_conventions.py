"""Habits of the command line: --version, -q/-v, plain help with defaults, one JSON shape, choices checked."""
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kgattr import __version__
from kgattr.cli.main import app

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
        assert "[default: 48]" in text and "[default: until the held-out loss stops falling]" in " ".join(text.split())


@pytest.fixture(scope="module")
def ontology(tmp_path_factory, catalog):
    from kgattr.ontology.files import save_ontology
    from kgattr.ontology.mining import induce_ontology

    path = tmp_path_factory.mktemp("conventions") / "onto.ttl"
    save_ontology(induce_ontology(catalog), path)
    return path


def test_quiet_hides_summary_lines(ontology):
    loud, quiet = kgattr("rules", "lint", ontology), kgattr("-q", "rules", "lint", ontology)
    assert loud.returncode == quiet.returncode == 0
    assert "errors" in loud.stderr and quiet.stderr == ""
    both = kgattr("-q", "-v", "rules", "lint", ontology)
    assert both.returncode == 2 and both.stderr.count("\n") == 1 and "--quiet" in both.stderr


def test_complete_formats(served_model, catalog):
    import csv
    import io
    import json

    sku, other = catalog.products[0].sku, catalog.products[1].sku
    base = ["complete", "--model", str(served_model), "--sku", sku]
    [one] = json.loads(runner.invoke(app, [*base, "--json"]).output)          # a list, also for one SKU
    assert one["sku"] == sku and one["completions"]
    shown = [x["confidence"] for c in one["completions"] for x in [c, *c["alternatives"]]]
    assert any(c["alternatives"] for c in one["completions"])
    assert all(len(repr(x)) <= 6 for x in shown), shown               # 4 digits, no float32 noise
    lines = runner.invoke(app, [*base, "--sku", other, "--output-format", "jsonl"]).output.splitlines()
    assert [json.loads(line)["sku"] for line in lines] == [sku, other]
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*base, "--output-format", "csv"]).output)))
    assert [r["attribute"] for r in rows] == [c["attribute"] for c in one["completions"]]
    assert json.loads(rows[0]["evidence"]) == one["completions"][0]["evidence"]
    refused = runner.invoke(app, [*base, "--json", "--output-format", "csv"])
    assert refused.exit_code == 2
    table = runner.invoke(app, base).output
    assert max(map(len, table.splitlines())) > 80 and sku in table            # piped: not cut at 80 columns


def test_product_without_gaps(served_model, fitted, catalog, tmp_path):
    from kgattr import Catalog, Product, write_catalog

    product = catalog.products[0]
    full = Product(product.sku, product.title, product.description, product.category,
                   {**{a: "x" for a in fitted.attributes_}, **product.attributes})
    write_catalog(Catalog([full]), tmp_path / "full.jsonl")
    out = runner.invoke(app, ["complete", "--model", str(served_model), "--sku", product.sku,
                              "--catalog", str(tmp_path / "full.jsonl")]).output
    assert f"{product.sku}: no gaps" in out, out


def test_rules_list_and_completeness_formats(ontology, catalog, tmp_path):
    import csv
    import io
    import json

    from kgattr import write_catalog

    rules = json.loads(runner.invoke(app, ["rules", "list", "--ontology", str(ontology), "--output-format",
                                           "json"]).output)
    assert rules and set(rules[0]) == {"id", "kind", "category", "attribute", "detail", "origin", "added"}
    table = runner.invoke(app, ["rules", "list", "--ontology", str(ontology)]).output
    assert len(table.splitlines()) == len(rules)
    write_catalog(catalog, tmp_path / "c.jsonl")
    ontology = shutil.copy(ontology, tmp_path / "edited.ttl")
    runner.invoke(app, ["rules", "add", "required", "--attribute", "gender", "--ontology", str(ontology)])
    rows = list(csv.DictReader(io.StringIO(runner.invoke(
        app, ["completeness", str(tmp_path / "c.jsonl"), "--ontology", str(ontology), "--output-format", "csv"]).output)))
    assert rows and {"category", "products", "complete"} <= set(rows[0])
    runner.invoke(app, ["rules", "add", "pattern", "--attribute", "brand", "--regex", "^ZZZ", "--ontology",
                        str(ontology)])
    broken = runner.invoke(app, ["rules", "check", str(tmp_path / "c.jsonl"), "--ontology", str(ontology),
                                 "--output-format", "csv"])
    rows = list(csv.DictReader(io.StringIO(broken.output)))
    assert broken.exit_code == 1 and len(rows) == len(catalog) and rows[0]["rule"] == "pattern/all/brand"


@pytest.mark.parametrize("args, choices", [(["rules", "suggest", "c.jsonl", "--kind", "bogus"], "'not-applicable'"),
                                           (["rules", "add", "bogus", "--ontology", "o.ttl"], "'excludes'"),
                                           (["ontology", "induce", "c.jsonl", "-o", "o.ttl", "--format", "xls"],
                                            "'parquet'")])
def test_kinds_and_formats_are_choices(args, choices):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
    assert "'bogus'" in result.output or "'xls'" in result.output
    assert choices in result.output and "Value error" not in result.output


@pytest.mark.parametrize("command", [["ontology", "induce", "-o", "o.ttl"], ["split", "-o", "split"],
                                     ["train", "-o", "model"]])
def test_catalog_format_option(catalog, tmp_path, command):
    from kgattr import write_catalog

    write_catalog(catalog, tmp_path / "c.jsonl")
    (tmp_path / "c.jsonl").rename(tmp_path / "catalog.txt")
    base = [*command[:-1], str(tmp_path / command[-1]), str(tmp_path / "catalog.txt")]
    wrong = runner.invoke(app, [*base, "--format", "csv"])            # read as asked: no training starts
    assert wrong.exit_code == 2 and "catalog.txt" in wrong.output
    if command[0] != "train":
        assert runner.invoke(app, [*base, "--format", "jsonl"]).exit_code == 0


def test_score_formats(tmp_path):
    import csv
    import io
    import json

    truth = [{"sku": s, "attribute": a, "value": "x", "category": ["C"], "cold": s == "B"}
             for s in "AB" for a in ("colour", "size")]
    guesses = [dict(c, value="x" if c["attribute"] == "colour" else "y", confidence=0.9) for c in truth]
    for name, cells in (("truth", truth), ("p", guesses)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    base = ["score", str(tmp_path / "truth.jsonl"), str(tmp_path / "p.jsonl")]
    report = json.loads(runner.invoke(app, [*base, "--output-format", "json"]).output)
    assert report == json.loads(runner.invoke(app, [*base, "--json"]).output) and report["micro"] == 0.5
    rows = [json.loads(line) for line in runner.invoke(app, [*base, "--output-format", "jsonl"]).output.splitlines()]
    assert [(r["scope"], r.get("attribute")) for r in rows] == [("all", None), ("cold", None),
                                                               ("attribute", "colour"), ("attribute", "size")]
    assert rows[2]["accuracy"] == 1.0 and rows[3]["cells"] == 2
    table = list(csv.DictReader(io.StringIO(runner.invoke(app, [*base, "--output-format", "csv"]).output)))
    assert [r["scope"] for r in table] == [r["scope"] for r in rows] and table[0]["micro"] == "0.5"
    assert "micro 0.5000" in runner.invoke(app, base).output
    assert runner.invoke(app, [*base, "--json", "--output-format", "csv"]).exit_code == 2


def test_rules_suggest_and_lint_formats(ontology, catalog, tmp_path):
    import csv
    import io
    import json

    from kgattr import write_catalog

    write_catalog(catalog, tmp_path / "c.jsonl")
    base = ["rules", "suggest", str(tmp_path / "c.jsonl"), "--min-support", "5", "--top", "5"]
    lines = [json.loads(line) for line in runner.invoke(app, [*base, "--json"]).output.splitlines()]
    assert lines and lines == json.loads(runner.invoke(app, [*base, "--output-format", "json"]).output)
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*base, "--output-format", "csv"]).output)))
    assert [r["command"] for r in rows] == [s["command"] for s in lines]
    assert json.loads(rows[0]["category"]) == lines[0]["category"]
    lint = ["rules", "lint", str(ontology)]
    jsonl = runner.invoke(app, [*lint, "--output-format", "jsonl"]).output
    assert jsonl == runner.invoke(app, [*lint, "--json"]).output
    assert runner.invoke(app, [*lint, "--json", "--output-format", "json"]).exit_code == 2


def test_progress_lines_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    from kgattr.io.progress import Lines, bar

    monkeypatch.setattr(Lines, "every", 0.0)
    assert list(bar(range(3), desc="encoding texts", unit="text", enabled=True)) == [0, 1, 2]
    steps = bar(total=2, desc="training", unit="batch", enabled=True)
    steps.update()
    steps.set_postfix(epoch=1)
    steps.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[:3] == [f"encoding texts: {i}/3 text" for i in (1, 2, 3)]
    assert lines[-2:] == ["training: 1/2 batch", "training: 1/2 batch (epoch=1) in 0 s"]
    monkeypatch.setattr(Lines, "every", 60.0)                  # a short step says nothing
    list(bar(range(3), desc="scoring", unit="batch", enabled=True))
    list(bar(range(3), desc="scoring", unit="batch", enabled=False))
    assert capsys.readouterr().err == ""


def test_confidences_of_float32_scores_print_four_digits():
    import json

    import numpy as np

    from kgattr.engine.completion import decide

    names = np.array([["a", "b", "c"]], dtype=object)
    logits = np.log(np.array([[0.7, 0.2852, 0.0148]], dtype=np.float32))
    assert json.dumps(decide(names, logits, np.ones((1, 3), bool)).shown.tolist()) == "[0.2852, 0.0148]"
