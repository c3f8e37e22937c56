import json
import re
from collections import Counter

import pytest
from typer.testing import CliRunner

from kgattr import Catalog, Product, write_catalog
from kgattr.bench.benchmark import prepare
from kgattr.bench.catalogs import catalog_name, find_catalogs, read_settings, run_catalogs
from kgattr.bench.evaluation import default_min_count, metadata_attributes, target_attributes
from kgattr.cli.main import app
from kgattr.exceptions import CatalogError
from kgattr.io.datasets import make_catalog, make_electronics_catalog

runner = CliRunner()


def test_electronics_sample_is_deterministic_with_values_in_varied_forms():
    cat = make_electronics_catalog(400, seed=3)
    again = make_electronics_catalog(400, seed=3)
    assert [(p.title, p.description, p.attributes) for p in cat] == [(p.title, p.description, p.attributes) for p in again]
    texts = {p.sku: f"{p.title} {p.description}" for p in cat}
    forms = {"2TB": {"2TB", "2 TB", "2 Terabytes", "2000GB"}, '15.6"': {'15.6"', "15.6 inch", "15.6-inch", "15.6in"}}
    for value, written in forms.items():
        seen = {w for p in cat if p.attributes.get(value[-2:] == "TB" and "capacity" or "screen_size") == value
                for w in written if re.search(rf"(?<![\w.]){re.escape(w)}(?![\w-])", texts[p.sku])}
        assert len(seen) >= 3, (value, seen)
    models = Counter(p.attributes["model_number"] for p in cat)
    assert sum(c == 1 for c in models.values()) >= 0.9 * len(models)          # an open vocabulary
    cells = [(p.sku, v) for p in cat for a, v in p.attributes.items() if a in ("brand", "colour", "capacity")]
    verbatim = sum(v.lower() in texts[s].lower() for s, v in cells) / len(cells)
    assert 0.4 < verbatim < 0.95                        # often stated, sometimes not, sometimes otherwise
    assert any(p.category[1] == "Storage" for p in cat) and any(p.category[1] == "Computers" for p in cat)


def test_sample_kinds(tmp_path):
    result = runner.invoke(app, ["sample", "--kind", "electronics", "--products", "30", "-o", str(tmp_path / "e.jsonl")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e.jsonl").read_text().splitlines()[0])["category"][0] == "Electronics"
    result = runner.invoke(app, ["sample", "--kind", "groceries", "-o", str(tmp_path / "g.jsonl")])
    assert result.exit_code == 2 and "groceries" in result.output and not (tmp_path / "g.jsonl").exists()


def test_targets_scale_with_the_draw():
    assert default_min_count(100) == 20 and default_min_count(1500) == 30 and default_min_count(44_441) == 889
    cat = make_catalog(400, seed=0)
    drawn, targets, _ = prepare(cat, limit=120, seed=0)
    assert len(drawn) == 120
    assert targets == target_attributes(drawn, 20)            # counted on the draw, not on the 400 products
    counts = Counter(a for p in drawn for a in p.attributes)
    assert all(counts[a] >= 20 for a in targets)
    assert prepare(cat, limit=120, seed=0, min_count=50)[1] == target_attributes(drawn, 50)


def test_metadata_attributes_are_detected_listed_and_dropped():
    products = []
    for i in range(200):
        category = ("Parts", "Diodes" if i % 2 else "Switches")
        products.append(Product(f"P{i}", f"MPN-{i}", f"{i % 7}V diode, small package", category,
                                {"Status": "Active" if i else "Old", "Mpn": f"MPN-{i}",
                                 "Listing": f"{{'name': '{category[1]}'}}", "MOQ": str(10 * (i % 3 + 1)),
                                 "Voltage": f"{i % 7}V", "Blurb": f"{i % 7}V diode, small package"}))
    found = metadata_attributes(Catalog(products), listed={"MOQ"})
    assert set(found) == {"Status", "Mpn", "Listing", "MOQ", "Blurb"}
    assert found["Status"].startswith("(almost) constant") and found["Mpn"].startswith("copies the title")
    assert found["Listing"].startswith("names the product's category") and found["MOQ"] == "listed as metadata"
    assert found["Blurb"].startswith("copies the description")
    drawn, targets, excluded = prepare(Catalog(products), min_count=20, exclude=["MOQ"])
    assert targets == ["Voltage"] and set(excluded) == set(found)
    assert all(set(p.attributes) <= {"Voltage"} for p in drawn)


def test_settings_and_catalog_folders(tmp_path):
    (tmp_path / "ok.toml").write_text('[shop-a]\nexclude = ["MOQ"]\nlimit = 5000\n[shop-b]\n')
    assert read_settings(tmp_path / "ok.toml") == {"shop-a": {"exclude": ["MOQ"], "limit": 5000},
                                                   "shop-b": {"exclude": [], "limit": None}}
    for body, error in (('[a]\nlimt = 3\n', "unknown key 'limt'"), ('[a]\nexclude = "MOQ"\n', "list of attribute"),
                        ('[a]\nlimit = -1\n', "positive integer"), ('[a\n', "bad.toml")):
        (tmp_path / "bad.toml").write_text(body)
        with pytest.raises(CatalogError, match=re.escape(error)):
            read_settings(tmp_path / "bad.toml")
    for name in ("shop-b", "shop-a"):
        (tmp_path / "data" / name).mkdir(parents=True)
        write_catalog(make_catalog(20), tmp_path / "data" / name / "catalog.jsonl.gz")
    found = find_catalogs([tmp_path / "data", tmp_path / "data" / "shop-a"])
    assert [catalog_name(p) for p in found] == ["shop-a", "shop-b", "shop-a"]
    assert catalog_name(tmp_path / "x" / "sample.jsonl") == "sample"
    with pytest.raises(CatalogError, match="no catalog.jsonl.gz"):
        find_catalogs([tmp_path])


def test_run_catalogs_reports_each_size_and_a_summary(tmp_path):
    for name, cat in (("fashion", make_catalog(200, seed=1)), ("electronics", make_electronics_catalog(200, seed=1))):
        (tmp_path / "data" / name).mkdir(parents=True)
        write_catalog(cat, tmp_path / "data" / name / "catalog.jsonl.gz")
    results = run_catalogs([tmp_path / "data"], tmp_path / "out", draws=(80,), methods=("majority", "tfidf"),
                           settings={"fashion": {"exclude": ["usage"], "limit": 150}})
    assert [label for label, _ in results] == ["electronics/all", "electronics/draw-80", "fashion/draw-150",
                                               "fashion/draw-80"]
    for label, summary in results:
        assert (tmp_path / "out" / label / "report.md").exists() and (tmp_path / "out" / label / "accuracy.png").exists()
        assert summary["split"]["min_count"] == 20 and "usage" not in summary["split"]["attributes"]
    assert results[2][1]["split"]["excluded"]["usage"] == "listed as metadata"
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "## electronics" in text and "## fashion" in text and "| products | method |" in text
    assert re.search(r"\| 80 \| majority \| [\d.]+ \| [\d.]+ \| [\d.]* \| [\d.]+ \| \d+ \| [+-][\d.]+% \|", text)
    assert "usage (listed as metadata)" in text


def test_evaluate_on_the_electronics_sample(tmp_path, tiny_bert):
    """Every method, kgattr's own included, through the command on the technical sample."""
    path = tmp_path / "electronics.jsonl"
    write_catalog(make_electronics_catalog(120, seed=2), path)
    result = runner.invoke(app, ["evaluate", str(path), "--epochs", "1", "--text-model", tiny_bert,
                                 "--report", str(tmp_path / "r")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert set(report["methods"]) == {"majority", "tfidf", "knn", "text", "graph", "kgattr"}
    assert "model_number" in report["split"]["attributes"] and report["split"]["hidden"] > 50
    assert report["methods"]["kgattr"]["coverage"] > 0.5
    # values never seen in training but stated in the text: only copies can fill them
    assert report["unseen"]["stated"] > 10
    assert report["methods"]["tfidf"]["unseen"]["stated"] == 0
    assert report["methods"]["kgattr"]["unseen"]["stated"] >= 0.5


def test_evaluate_command_on_a_folder_with_draws(tmp_path):
    for name in ("shop-a", "shop-b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        write_catalog(make_electronics_catalog(120, seed=len(name)), tmp_path / "data" / name / "catalog.jsonl.gz")
    (tmp_path / "bench.toml").write_text('[shop-b]\nexclude = ["colour"]\n')
    args = ["evaluate", str(tmp_path / "data"), "--draw", "60", "--methods", "majority",
            "--settings", str(tmp_path / "bench.toml")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--report" in result.output
    result = runner.invoke(app, args + ["--report", str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "## shop-a" in result.output and "colour (listed as metadata)" in result.output
    assert sorted(p.parent.name for p in (tmp_path / "out").glob("*/*/report.json")) == ["all", "all", "draw-60", "draw-60"]
