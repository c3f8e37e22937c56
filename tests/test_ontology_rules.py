import random

import pytest

from kgattr import Catalog, Product, RuleSet
from kgattr.exceptions import OntologyError
from kgattr.ontology.rules import shacl_violations
from kgattr.ontology.files import load_ontology, save_ontology
from kgattr.ontology.mining import induce_ontology


def test_induce_and_turtle_round_trip(tmp_path, catalog):
    onto = induce_ontology(catalog)
    path = tmp_path / "o.ttl"
    save_ontology(onto, path, source="test")
    back = load_ontology(path)
    assert back.categories == onto.categories
    assert back.attributes == onto.attributes
    assert back.shapes == onto.shapes
    assert load_ontology(path).shapes == onto.shapes          # second load comes from the parse cache
    assert ("Apparel", "Topwear", "Shirts") in back.categories


def test_broken_turtle_is_one_line_error(tmp_path):
    path = tmp_path / "bad.ttl"
    path.write_text("@prefix kg: <https://kgattr.org/ontology#> .\nkg:a kg:b \n")
    with pytest.raises(OntologyError, match="bad.ttl"):
        load_ontology(path)


def test_compiled_checks(catalog):
    rules = RuleSet(induce_ontology(catalog, max_unseen=1.0))      # every allowed set closed
    shirts = ("Apparel", "Topwear", "Shirts")
    assert rules.check(shirts, "Fabric", "Cotton") is None
    assert rules.check(shirts, "Fabric", "Denim").kind == "not-allowed"
    v = rules.check(shirts, "Dial Shape", "Round")
    assert v.kind == "not-applicable" and v.rule.startswith("category/")
    assert rules.check(("Unknown",), "Dial Shape", "Round") is None     # no shape, no constraint
    assert rules.allowed_values(shirts, "Dial Shape") == frozenset()


def _perturbed(catalog, seed):
    rng = random.Random(seed)
    values = sorted({(a, v) for p in catalog for a, v in p.attributes.items()})
    products = []
    for p in catalog:
        attrs = dict(p.attributes)
        if rng.random() < 0.3:
            a, v = rng.choice(values)
            attrs[a] = v                     # often inapplicable or not allowed in this category
        products.append(Product(p.sku, p.title, p.description, p.category, attrs))
    return Catalog(products)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_checks_agree_with_pyshacl(catalog, seed):
    onto = induce_ontology(Catalog(list(catalog)[:100]))       # induced from part: the rest breaks rules
    data = _perturbed(catalog, seed)
    compiled = {(v.sku, v.attribute, v.value, v.kind, v.rule) for v in RuleSet(onto).violations(data)}
    reference = {(v.sku, v.attribute, v.value, v.kind, v.rule) for v in shacl_violations(data, onto)}
    assert compiled == reference
    assert compiled                                            # the test exercised violations


def test_rules_list_filters_and_keeps_origin(tmp_path, catalog):
    from kgattr.ontology.rules import list_rules

    onto = induce_ontology(catalog)
    path = tmp_path / "o.ttl"
    for shape in onto.shapes:
        shape.origin = "expert: Ana"
    save_ontology(onto, path)
    text = path.read_text().replace('kg:origin "expert: Ana"', 'kg:origin "expert: Bo"', 1)
    path.write_text(text)
    again = load_ontology(path)
    rules = list_rules(again)
    assert {r.origin for r in rules} == {"expert: Ana", "expert: Bo"}
    save_ontology(again, tmp_path / "o2.ttl")                                   # a hand-set origin survives a rewrite
    assert 'kg:origin "expert: Bo"' in (tmp_path / "o2.ttl").read_text()
    leaf = onto.shapes[0].category
    only = list_rules(again, category=leaf[-1])
    assert only and all(r.category == leaf for r in only)
    assert list_rules(again, category=" > ".join(leaf)) == only
    colour = list_rules(again, attribute="base_colour")
    assert colour and all(r.attribute == "base_colour" for r in colour)
    assert {r.kind for r in colour} <= {"allowed", "single-valued", "not-applicable"}


def test_rules_check_command_exit_codes(tmp_path, catalog):
    import json

    from typer.testing import CliRunner

    from kgattr import write_catalog
    from kgattr.cli.main import app

    write_catalog(catalog, tmp_path / "c.jsonl")
    save_ontology(induce_ontology(catalog, max_unseen=1.0), tmp_path / "all.ttl")
    # rare values become violations
    save_ontology(induce_ontology(catalog, min_support=3, max_unseen=1.0), tmp_path / "strict.ttl")
    runner = CliRunner()
    ok = runner.invoke(app, ["rules", "check", str(tmp_path / "c.jsonl"), "--ontology", str(tmp_path / "all.ttl")])
    assert ok.exit_code == 0 and "0 values break a rule" in ok.output
    bad = runner.invoke(app, ["rules", "check", str(tmp_path / "c.jsonl"), "--ontology", str(tmp_path / "strict.ttl"),
                              "--json"])
    assert bad.exit_code == 1
    found = [json.loads(line) for line in bad.output.splitlines()]
    expected = RuleSet(load_ontology(tmp_path / "strict.ttl")).violations(catalog)
    assert len(found) == len(expected) > 0 and set(found[0]) == {"sku", "attribute", "value", "rule", "kind"}


def test_induced_differs_rule_checks_both_ways(tmp_path):
    colours = ["Red", "Blue", "Black", "White"]
    products = [Product(f"P{i}", "t", "d", ("Apparel",), {"base_colour": colours[i % 4], "colour1": colours[(i + 1 + i // 4) % 4]})
                for i in range(200) if (i + 1 + i // 4) % 4 != i % 4]
    products += [Product(f"B{i}", "t", "d", ("Apparel",), {"base_colour": "Red"}) for i in range(10)]
    onto = induce_ontology(Catalog(products))
    [rule] = [s for s in onto.shapes if not s.closed]
    assert rule.properties["colour1"].disjoint == frozenset({"base_colour"})
    path = tmp_path / "o.ttl"
    save_ontology(onto, path)
    assert "sh:disjoint <https://kgattr.org/attribute/base_colour>" in path.read_text()
    rules = RuleSet(load_ontology(path))
    assert rules.check(("Apparel",), "colour1", "Red", {"base_colour": "Red"}).kind == "differs"
    assert rules.check(("Apparel",), "base_colour", "Red", {"colour1": "Red"}).kind == "differs"
    assert rules.check(("Apparel",), "colour1", "Blue", {"base_colour": "Red"}) is None
    assert rules.conflict_free(("Apparel",), "colour1", ["Red", "Blue"], {"base_colour": "Red"}) == [False, True]
    assert rules.conditional(("Apparel",), "base_colour")
    same = Product("Q", "t", "d", ("Apparel",), {"base_colour": "Red", "colour1": "Red"})
    assert [(v.attribute, v.kind) for v in rules.violations([same])] == [("colour1", "differs")]


def test_conflict_free_is_check_less_the_value_alone():
    from kgattr.ontology.ontology import Conditional, Ontology, Property, Shape

    onto = Ontology(shapes=[Shape("s", ("Shoes",), properties={"size": Property("p", values=frozenset({"40"}))})],
                    conditionals=[Conditional("c", ("Shoes",), ("gender", "Kids"), ("size", "40"), excludes=True)])
    rules = RuleSet(onto)
    assert rules.check(("Shoes",), "size", "41", {"gender": "Kids"}).kind == "not-allowed"
    assert rules.check(("Shoes",), "size", "40", {"gender": "Kids"}).kind == "excludes"
    assert rules.conflict_free(("Shoes",), "size", ["41", "40"], {"gender": "Kids"}) == [True, False]
    assert rules.conflict_free(("Shoes",), "size", ["40"], {"gender": "Men"}) == [True]


def test_names_that_differ_only_in_form_are_proposed_as_one_attribute(tmp_path):
    from collections import Counter

    from kgattr.io.catalog import Catalog, Product
    from kgattr.ontology.mining import name_variants

    counts = Counter({"Color": 50, "colour": 3, "Color(s)": 2, "Voltage - AC": 5, "Voltage - DC": 9,
                      "Power": 4, "Power (W)": 3, "Fabric": 7, "Fabric 2": 2})
    assert name_variants(counts) == {"Color": frozenset({"colour", "Color(s)"})}
    catalog = Catalog([Product(f"S{i}", "t", "", ("Shirts",), {"Color" if i % 4 else "colour": "Red"})
                       for i in range(8)], "c")
    onto = induce_ontology(catalog)
    assert onto.alt_labels == {"Color": frozenset({"colour"})}
    save_ontology(onto, tmp_path / "o.ttl")
    assert "skos:altLabel" in (tmp_path / "o.ttl").read_text()
    assert load_ontology(tmp_path / "o.ttl").alt_labels == onto.alt_labels
