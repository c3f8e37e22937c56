import numpy as np
import pytest

from kgattr import Catalog, Product, RuleSet
from kgattr.bench.evaluation import (Split, coverage_at_precision, is_validation, score, split_catalog,
                                     target_attributes, twin_values)
from kgattr.engine.completion import precision_coverage
from kgattr.ontology.mining import induce_ontology


def test_split_holds_out_title_groups_whole(catalog):
    attrs = target_attributes(catalog, 20)
    split = split_catalog(catalog, mask_rate=0.2, seed=0, attributes=attrs, cold_rate=0.3)
    assert split.cold
    by_title = {}
    for p in catalog:
        by_title.setdefault(p.title.lower(), set()).add(p.sku in split.cold)
    assert all(len(sides) == 1 for sides in by_title.values())     # variants never straddle the line
    train = {p.sku: p for p in split.train}
    assert all(not train[s].attributes for s in split.cold)        # text and category only
    hidden = {(s, a) for s, a, _ in split.hidden}
    assert all((s, a) in hidden for s in split.cold for a in catalog[s].attributes if a in attrs)
    warm = split_catalog(catalog, mask_rate=0.2, seed=0, attributes=attrs)
    assert not warm.cold and 0.1 < len(warm.hidden) / sum(a in attrs for p in catalog for a in p.attributes) < 0.3
    small = split_catalog(catalog, mask_rate=0.2, seed=0, attributes=attrs, limit=50)
    assert len(small.train) == 50 and {p.sku for p in small.train} <= {p.sku for p in catalog}


def test_precision_coverage_and_thresholds_from_validation():
    conf, correct = np.array([0.9, 0.8, 0.8, 0.4]), np.array([True, True, False, False])
    t, cov, prec = precision_coverage(conf, correct, total=8)
    assert t.tolist() == [0.9, 0.8, 0.4] and cov.tolist() == [1 / 8, 3 / 8, 4 / 8]
    assert prec.tolist() == pytest.approx([1, 2 / 3, 1 / 2])
    # right exactly when confidence > 0.5, on both halves: the 0.99 threshold fills every right cell
    skus = [f"S{i}" for i in range(400)]
    cells = [(s, True, i % 2 == 0, 0.9 if i % 2 == 0 else 0.3) for i, s in enumerate(skus)]
    cells.append(("S1000", False, False, 0.0))
    result = coverage_at_precision(cells)
    test = [c for c in cells if not is_validation(c[0])]
    assert result["0.99"]["threshold"] == 0.9 and result["0.99"]["precision"] == 1.0
    assert result["0.99"]["coverage"] == pytest.approx(sum(c[2] for c in test) / len(test))


def test_score_counts_rule_breaking_and_cold_products():
    cat = Catalog([Product(sku, "shirt", "", ("Apparel", "Topwear"), {"colour": colour})
                   for sku, colour in [("A", "Red"), ("B", "Blue"), ("C", "Red"), ("D", "Blue")]])
    rules = RuleSet(induce_ontology(cat, max_unseen=1.0))        # four cells: closed only when told
    hidden = [("A", "colour", "Red"), ("B", "colour", "Blue")]
    categories = {p.sku: p.category for p in cat}
    result = score(hidden, {("A", "colour"): "Red", ("B", "colour"): "Mauve"}, {("A", "colour"): 1.0},
                   cold={"B"}, rules=rules, categories=categories)
    assert result["micro"] == 0.5 and result["rule_breaking"] == 0.5
    assert result["cold"]["cells"] == 1 and result["cold"]["micro"] == 0.0


def test_twin_values_come_from_products_with_the_same_text():
    shirt = lambda sku, attrs, title="Red Shirt": Product(sku, title, "Cotton", ("Apparel",), attrs)
    train = Catalog([shirt("A", {}), shirt("B", {"colour": "Red"}), shirt("C", {"colour": "Red"}),
                     shirt("D", {"colour": "Blue"}), shirt("E", {}, "Blue Shirt"), shirt("F", {"colour": "Blue"}, "Blue Shirt ")])
    hidden = [("A", "colour", "Blue"), ("B", "size", "M"), ("E", "colour", "Blue")]
    twins = twin_values(Split(train, hidden))
    assert twins == {("A", "colour"): "Red", ("E", "colour"): "Blue"}    # majority of B, C, D; B has no twin size
    assert score([c for c in hidden if c[:2] in twins], twins)["micro"] == 0.5


def test_nothing_hidden_leaks_into_any_method(catalog, tiny_bert, tmp_path):
    """A value held only by hidden cells is never predicted: not by kgattr (ontology, graph, calibration all
    built from visible cells) nor by any baseline."""
    from kgattr.bench.benchmark import ALL_METHODS, run_benchmark, write_report

    attrs = target_attributes(catalog, 20)
    first = split_catalog(catalog, mask_rate=0.2, seed=0, attributes=attrs)
    planted = {(s, a) for s, a, _ in first.hidden[::5]}
    products = [Product(p.sku, p.title, p.description, p.category,
                        {a: "Zzyzx" if (p.sku, a) in planted else v for a, v in p.attributes.items()}, p.extra)
                for p in catalog]
    bench = run_benchmark(Catalog(products), mask_rate=0.2, seed=0, min_count=20, epochs=1, text_model=tiny_bert)
    assert {(s, a) for s, a, v in bench.split.hidden if v == "Zzyzx"} == planted      # the same cells hidden
    assert not any(v == "Zzyzx" for p in bench.split.train for v in p.attributes.values())
    for name in ALL_METHODS:
        assert not any(v == "Zzyzx" for v, _ in bench.predictions[name].values()), name
        r = bench.summary["methods"][name]
        assert 0 <= r["micro"] <= 1 and "0.95" in r["coverage_at_precision"] and "rule_breaking" in r
    assert bench.summary["methods"]["kgattr"]["rule_breaking"] == 0.0
    write_report(bench, tmp_path / "report")
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"report.json", "report.md", "accuracy.png",
                                                                   "precision_coverage.png", "reliability.png"}
    assert "| kgattr full" in (tmp_path / "report" / "report.md").read_text()
    assert bench.summary["twins"]["cells"] == bench.summary["methods"]["kgattr"]["twins"]["cells"]
