import random

import pytest

from kgattr import Catalog, Ontology, Product, RuleSet
from kgattr.exceptions import OntologyError
from kgattr.rules import shacl_violations


def test_induce_and_turtle_round_trip(tmp_path, catalog):
    onto = Ontology.induce(catalog)
    path = tmp_path / "o.ttl"
    onto.save(path, source="test")
    back = Ontology.load(path)
    assert back.categories == onto.categories
    assert back.attributes == onto.attributes
    assert back.shapes == onto.shapes
    assert Ontology.load(path).shapes == onto.shapes          # second load comes from the parse cache
    assert ("Apparel", "Topwear", "Shirts") in back.categories


def test_broken_turtle_is_one_line_error(tmp_path):
    path = tmp_path / "bad.ttl"
    path.write_text("@prefix kg: <https://kgattr.org/ontology#> .\nkg:a kg:b \n")
    with pytest.raises(OntologyError, match="bad.ttl"):
        Ontology.load(path)


def test_compiled_checks(catalog):
    rules = RuleSet(Ontology.induce(catalog))
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
    onto = Ontology.induce(Catalog(list(catalog)[:100]))       # induced from part: the rest breaks rules
    data = _perturbed(catalog, seed)
    compiled = {(v.sku, v.attribute, v.value, v.kind, v.rule) for v in RuleSet(onto).violations(data)}
    reference = {(v.sku, v.attribute, v.value, v.kind, v.rule) for v in shacl_violations(data, onto)}
    assert compiled == reference
    assert compiled                                            # the test exercised violations
