import json

import pytest
from typer.testing import CliRunner

from kgattr import read_catalog, write_catalog
from kgattr.cli.main import app

runner = CliRunner()


def run(*args):
    from kgattr.exceptions import KgattrError

    try:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    except KgattrError as e:              # main() maps these to exit 2; the runner calls app directly
        return type("R", (), {"exit_code": 2, "output": f"kgattr: error: {e}"})()


@pytest.fixture(scope="module")
def model(tmp_path_factory, catalog, tiny_bert):
    root = tmp_path_factory.mktemp("cli")
    path = root / "catalog.jsonl"
    write_catalog(catalog, path)
    result = runner.invoke(app, ["train", str(path), "--out", str(root / "model"), "--text-model", tiny_bert,
                                 "--epochs", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root


def test_complete_json_shape(model, catalog):
    sku = catalog.products[0].sku
    result = run("complete", "--model", model / "model", "--sku", sku, "--json")
    assert result.exit_code == 0
    [out] = json.loads(result.output)                  # a list, also for one SKU
    assert set(out) == {"sku", "known", "completions"}
    c = out["completions"][0]
    assert set(c) == {"attribute", "value", "confidence", "evidence", "alternatives", "rejected"}
    assert {"similar_skus", "listed_near", "graph", "text"} <= set(c["evidence"]) <= \
        {"similar_skus", "listed_near", "graph", "text", "extracted"}         # a copied value shows its span
    table = run("complete", "--model", model / "model", "--sku", sku)
    assert table.exit_code == 0 and "confidence" in table.output


def test_unknown_sku_exit_2(model):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "kgattr", "complete", "--model", str(model / "model"), "--sku", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown SKU 'nope'" in proc.stderr


def test_impute_keeps_input_and_known_values(model):
    src = model / "catalog.jsonl"
    before = src.read_bytes()
    out = model / "out" / "filled.jsonl"
    result = run("impute", src, "--model", model / "model", "-o", out, "--min-confidence", "0.3")
    assert result.exit_code == 0, result.output
    assert src.read_bytes() == before
    original, filled = read_catalog(src), read_catalog(out)
    cells = [json.loads(line) for line in (out.parent / "filled.jsonl.cells.jsonl").read_text().splitlines()]
    assert cells and all(c["confidence"] >= 0.3 for c in cells)
    assert set(cells[0]) == {"sku", "attribute", "value", "confidence", "source", "evidence"}
    for p in original:
        q = filled[p.sku]
        assert {k: q.attributes[k] for k in p.attributes} == p.attributes
    assert sum(len(p.attributes) for p in filled) - sum(len(p.attributes) for p in original) == len(cells)
    assert sorted(f.name for f in out.parent.iterdir()) == ["filled.jsonl", "filled.jsonl.cells.jsonl",
                                                             "filled.jsonl.review.jsonl"]
    review = [json.loads(line) for line in (out.parent / "filled.jsonl.review.jsonl").read_text().splitlines()]
    assert all(r["confidence"] < 0.3 and r["best_guess"] for r in review)


def test_impute_at_precision_uses_thresholds_saved_with_the_model(model):
    from kgattr import AttributeCompleter

    completer = AttributeCompleter.load(model / "model")
    counts = {}
    for precision in (0.5, 0.9):
        out = model / f"p{precision}" / "filled.jsonl"
        result = run("impute", model / "catalog.jsonl", "--model", model / "model", "-o", out,
                     "--precision", precision)
        assert result.exit_code == 0, result.output
        floor = completer.thresholds(precision)
        cells = [json.loads(line) for line in (out.parent / "filled.jsonl.cells.jsonl").read_text().splitlines()]
        review = [json.loads(line) for line in (out.parent / "filled.jsonl.review.jsonl").read_text().splitlines()]
        assert all(floor[c["attribute"]] is not None and c["confidence"] >= floor[c["attribute"]] for c in cells)
        assert all(r["threshold"] is None or r["confidence"] < r["threshold"] for r in review)
        counts[precision] = len(cells)
    assert counts[0.5] >= counts[0.9]
    assert run("impute", model / "catalog.jsonl", "--model", model / "model", "-o", model / "x.jsonl",
               "--precision", 1.5).exit_code == 2


def test_impute_csv_output(model):
    out = model / "wide.csv"
    assert run("impute", model / "catalog.jsonl", "--model", model / "model", "-o", out).exit_code == 0
    assert len(read_catalog(out)) == len(read_catalog(model / "catalog.jsonl"))


def test_bad_catalog_line_exit_2(tmp_path, model):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sku": "a"}\n{"sku": "b", "attributes": {"x": 1}}\n')
    result = run("impute", bad, "--model", model / "model", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert "bad.jsonl:2: field 'attributes.x'" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_ontology_and_graph_commands(tmp_path, model):
    src = model / "catalog.jsonl"
    assert run("ontology", "induce", src, "-o", tmp_path / "o.ttl").exit_code == 0
    assert "sh:NodeShape" in (tmp_path / "o.ttl").read_text()
    assert run("graph", "build", src, "-o", tmp_path / "g", "--graphml").exit_code == 0
    assert (tmp_path / "g" / "graph.graphml").exists()
    assert run("complete", "--model", model / "model", "--sku", "S00001", "--ontology", tmp_path / "o.ttl").exit_code == 0


def test_help_is_instant_and_lazy():
    import subprocess
    import sys

    code = "import sys, kgattr.cli.main; kgattr.cli.main.app(['--help'], standalone_mode=False); " \
           "print(sorted(m for m in ('torch', 'transformers', 'faiss', 'torch_geometric') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().endswith("[]")


def test_split_then_score_any_predictions(model, tmp_path):
    out = tmp_path / "split"
    assert run("split", model / "catalog.jsonl", "--min-count", 20, "-o", out).exit_code == 0
    truth = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    assert truth and all(set(c) == {"sku", "attribute", "value", "category", "cold"} for c in truth)
    visible = {p.sku: p.attributes for p in read_catalog(out / "train.jsonl")}
    assert all(c["attribute"] not in visible[c["sku"]] for c in truth)
    # half right, all at confidence 0.5: perfectly calibrated
    preds = [dict(c, value=c["value"] if i % 2 else "wrong", confidence=0.5) for i, c in enumerate(truth)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    result = run("score", out / "truth.jsonl", tmp_path / "p.jsonl", "--json")
    report = json.loads(result.output)
    assert report["micro"] == pytest.approx(len(truth) // 2 / len(truth))
    assert report["coverage"] == 1.0 and report["ece"] == pytest.approx(abs(0.5 - report["micro"]))
    (tmp_path / "bad.jsonl").write_text(json.dumps(preds[0]) + "\n" + '{"sku": "1", "attribute": "a"}\n')
    result = run("score", out / "truth.jsonl", tmp_path / "bad.jsonl")
    assert result.exit_code == 2 and "bad.jsonl:2: field 'value'" in result.output


def test_evaluate_writes_report_and_rejects_unknown_methods(model, tmp_path):
    result = run("evaluate", model / "catalog.jsonl", "--min-count", 20, "--methods", "majority,tfidf",
                 "--limit", 120, "--cold-rate", 0.1, "--report", tmp_path / "r")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["split"]["products"] == 120 and report["split"]["cold_products"] > 0
    assert set(report["methods"]) == {"majority", "tfidf"} and "cold" in report["methods"]["tfidf"]
    assert "| tf-idf + LinearSVC" in result.output
    result = run("evaluate", model / "catalog.jsonl", "--methods", "majority,oracle")
    assert result.exit_code == 2 and "oracle" in result.output


def test_rules_dry_run_explain_and_completeness(model, catalog, tmp_path):
    from kgattr.ontology.files import load_ontology, save_ontology
    from kgattr.ontology.ontology import PREFIXES, Conditional
    from kgattr.ontology.shacl import conditional_block

    sku = catalog.products[0].sku
    [shown] = json.loads(run("complete", "--model", model / "model", "--sku", sku, "--json", "--explain").output)
    target = next(c for c in shown["completions"] if c["value"] is not None)
    assert target["checked"] and all(r["passed"] for r in target["checked"])
    condition = next(iter(catalog[sku].attributes.items()))
    rule = Conditional("excludes/test", (), condition, (target["attribute"], target["value"]), excludes=True)
    (tmp_path / "new.ttl").write_text(PREFIXES + conditional_block(rule))
    result = run("rules", "test", "--catalog", model / "catalog.jsonl", "--model", model / "model",
                 tmp_path / "new.ttl", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rejected = [c for c in report["changes"] if c["sku"] == sku and c["attribute"] == target["attribute"]]
    assert rejected and rejected[0]["before"] == target["value"] and rejected[0]["rule"] == "excludes/test"
    assert report["by_rule"]["excludes/test"] >= 1
    # completeness needs required attributes: one added to a copy of the model's ontology
    onto = tmp_path / "o.ttl"
    save_ontology(load_ontology(model / "model" / "ontology.ttl"), onto)
    assert run("rules", "add", "required", "--attribute", "season", "--ontology", onto).exit_code == 0
    out = tmp_path / "imputed.jsonl"
    assert run("impute", model / "catalog.jsonl", "--model", model / "model", "-o", out).exit_code == 0
    result = run("completeness", model / "catalog.jsonl", "--ontology", onto, "--imputed", out, "--json")
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows and all(r["required"] == ["season"] for r in rows)
    assert all(r["complete"] <= r["complete_after"] <= r["products"] for r in rows)
    assert sum(r["complete_after"] for r in rows) > sum(r["complete"] for r in rows)
