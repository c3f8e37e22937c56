import json
import random

import pytest

from kgattr import Catalog, Ontology, Product, RuleSet, write_catalog
from kgattr.ontology.authoring import RuleError, add_rule, lint_files, make_rule, remove_rule
from kgattr.ontology.ontology import Conditional, Property, Shape
from kgattr.ontology.rules import shacl_violations
from kgattr.ontology.files import load_ontology, save_ontology
from kgattr.ontology.mining import induce_ontology
from test_cli import run                 # the in-process CLI runner, exit 2 for KgattrError as in main()


@pytest.fixture()
def onto_file(tmp_path, catalog):
    path = tmp_path / "o.ttl"
    save_ontology(induce_ontology(catalog, max_unseen=1.0), path)        # every allowed set closed
    return path


def test_add_keeps_every_byte_and_remove_restores_the_file(onto_file):
    hand = "\n# Ana: shirts are never made of denim here\n" + \
        "<https://kgattr.org/rule/hand/fit>   a sh:PropertyShape ; sh:targetClass " \
        "<https://kgattr.org/category/Apparel/Topwear/Shirts> ;\n  sh:path <https://kgattr.org/attribute/Fit> ;" \
        " sh:in ( \"Slim Fit\" \"Regular Fit\" ) .\n"
    onto_file.write_text(onto_file.read_text() + hand)
    original = onto_file.read_bytes()
    onto = load_ontology(onto_file)
    rules = [make_rule(onto, "excludes", condition="gender=Boys", consequence="age_group=Adults-Men"),
             make_rule(onto, "required", category="Shirts", attribute="Fabric"),
             make_rule(onto, "not-applicable", category="Apparel > Bottomwear", attribute="Neck"),
             make_rule(onto, "pattern", attribute="brand", regex="^[A-Z]"),
             make_rule(onto, "range", attribute="year", low=2010, high=2020),
             make_rule(onto, "allowed", category="Shirts", attribute="Fit", values=["Slim Fit"]),
             make_rule(onto, "differs", attribute="Strap Material", other="Material"),
             make_rule(onto, "implies", category="Apparel", condition="gender=Women",
                       consequence="age_group=Adults-Women")]
    for rule in rules:
        before = onto_file.read_bytes()
        add_rule(onto_file, rule)
        assert onto_file.read_bytes().startswith(before.rstrip(b"\n"))        # appended, nothing reformatted
    back = load_ontology(onto_file)
    assert {r.id for r in rules} <= back.rule_ids()
    assert next(s for s in back.shapes if s.id == "hand/fit").properties["Fit"].values == {"Slim Fit", "Regular Fit"}
    assert next(c for c in back.conditionals if c.excludes).consequence == ("age_group", "Adults-Men")
    assert RuleSet(back).check(("Accessories",), "Material", "Leather", {"Strap Material": "Leather"}).kind == "differs"
    for rule in reversed(rules):
        remove_rule(onto_file, rule.id)
    assert onto_file.read_bytes() == original


def test_bad_rule_input_is_exit_2_and_leaves_the_file_alone(onto_file):
    original = onto_file.read_bytes()
    cases = [["rules", "add", "required", "--attribute", "colour"],
             ["rules", "add", "pattern", "--attribute", "brand", "--regex", "([a-z"],
             ["rules", "add", "implies", "--if", "gender=Menn", "--then", "age_group=Adults-Men"],
             ["rules", "add", "allowed", "--category", "Shrts", "--attribute", "Fit", "--values", "Slim Fit"],
             ["rules", "add", "sometimes", "--attribute", "brand"],
             ["rules", "add", "differs", "--attribute", "usage", "--from", "usage"],
             ["rules", "add", "differs", "--attribute", "usage"],
             ["rules", "remove", "no/such/rule"]]
    for args in cases:
        result = run(*args, "--ontology", onto_file)
        assert result.exit_code == 2, args
        assert len(result.output.strip().splitlines()) == 1
        assert onto_file.read_bytes() == original
    broken = onto_file.parent / "broken.ttl"
    broken.write_text(onto_file.read_text() + "kg:a kg:b\n")
    result = run("rules", "add", "required", "--attribute", "brand", "--ontology", broken)
    assert result.exit_code == 2 and f"{broken}:" in result.output and "syntax" in result.output


def test_contradictions_are_refused_and_linted(onto_file, tmp_path):
    assert run("rules", "add", "required", "--category", "Shirts", "--attribute", "Fabric",
               "--ontology", onto_file).exit_code == 0
    refused = run("rules", "add", "not-applicable", "--category", "Apparel", "--attribute", "Fabric",
                  "--ontology", onto_file)
    assert refused.exit_code == 2 and "required" in refused.output
    assert run("rules", "add", "implies", "--if", "gender=Men", "--then", "age_group=Adults-Men",
               "--ontology", onto_file).exit_code == 0
    clash = run("rules", "add", "excludes", "--if", "gender=Men", "--then-not", "age_group=Adults-Men",
                "--ontology", onto_file)
    assert clash.exit_code == 2 and "cannot both hold" in clash.output
    # a hand-written file with the same mistakes, an unknown attribute and a shape kgattr cannot compile
    onto = load_ontology(onto_file)
    hand = tmp_path / "hand.ttl"
    hand.write_text(onto_file.read_text() + """
<https://kgattr.org/rule/hand/a> a sh:NodeShape ; sh:targetSubjectsOf kg:sku ;
    sh:or ( [ sh:not [ sh:path <https://kgattr.org/attribute/gender> ; sh:hasValue "Men" ] ]
            [ sh:path <https://kgattr.org/attribute/age_group> ; sh:in ( "Kids-Boys" ) ] ) .
<https://kgattr.org/rule/hand/b> a sh:PropertyShape ; sh:targetSubjectsOf kg:sku ;
    sh:path <https://kgattr.org/attribute/colour> ; sh:minCount 1 .
<https://kgattr.org/rule/hand/c> a sh:PropertyShape ; sh:targetSubjectsOf kg:sku ;
    sh:path <https://kgattr.org/attribute/brand> ; sh:datatype xsd:string .
""")
    found = [str(f) for f in lint_files([hand])]
    assert any("cannot both hold" in f and "hand/a" in f for f in found)
    assert any("unknown attribute 'colour'" in f for f in found)
    assert any(f.startswith("warning: hand/c: not compiled") for f in found)
    assert run("rules", "lint", hand).exit_code == 1
    assert run("rules", "lint", onto_file).exit_code == 0
    assert onto.rule_ids() < load_ontology(hand).rule_ids()


def _random_rules(onto: Ontology, rng: random.Random) -> Ontology:
    """Rules of every kind, on random scopes, with values taken from the ontology."""
    values = {}
    for s in onto.shapes:
        for a, p in s.properties.items():
            values.setdefault(a, set()).update(p.values or ())
    attrs = sorted(a for a in values if values[a])
    scopes = [()] + sorted(onto.categories)
    shapes, conditionals = [], []
    for i in range(12):
        a = rng.choice(attrs)
        vs = sorted(values[a])
        kind = rng.choice(["allowed", "required", "not-applicable", "pattern", "range"])
        prop = {"allowed": Property(f"r{i}", frozenset(rng.sample(vs, max(1, len(vs) // 2)))),
                "required": Property(f"r{i}", min_count=1), "not-applicable": Property(f"r{i}", max_count=0),
                "pattern": Property(f"r{i}", pattern=rng.choice(["^[A-M]", "o", "^\\d+$"])),
                "range": Property(f"r{i}", low=2011.0, high=2015.0)}[kind]
        shapes.append(Shape(f"r{i}", rng.choice(scopes), False, {a: prop}))
    shapes.append(Shape("d0", (), False, {"colour1": Property("d0", disjoint=frozenset({"base_colour"}))}))
    for i in range(16):
        a1, a2 = rng.sample(attrs, 2)
        conditionals.append(Conditional(f"c{i}", rng.choice(scopes), (a1, rng.choice(sorted(values[a1]))),
                                        (a2, rng.choice(sorted(values[a2]))), excludes=rng.random() < 0.5))
    return onto.merge(Ontology(shapes=shapes, conditionals=conditionals))


@pytest.mark.parametrize("seed", range(10))
def test_compiled_checks_agree_with_pyshacl_on_generated_rules(catalog, seed):
    rng = random.Random(seed)
    onto = _random_rules(induce_ontology(Catalog(list(catalog)[:100]), max_unseen=1.0), rng)
    products = []
    for p in catalog:
        attrs = {a: v for a, v in p.attributes.items() if rng.random() > 0.1}
        if rng.random() < 0.3:                     # a second colour, sometimes the base colour again
            attrs["colour1"] = rng.choice([attrs.get("base_colour", "Red"), "Red"])
        products.append(Product(p.sku, p.title, p.description, p.category, attrs))
    data = Catalog(products)
    rules = RuleSet(onto)
    compiled = {(v.sku, v.attribute, v.value, v.kind, v.rule) for v in rules.violations(data) + rules.missing(data)}
    reference = {(v.sku, v.attribute, v.value, v.kind, v.rule) for v in shacl_violations(data, onto)}
    assert compiled == reference
    kinds = {k for *_, k, _ in compiled}
    assert kinds >= {"not-allowed", "missing", "differs"} and kinds & {"implies", "excludes"}


def test_suggest_finds_implications_and_its_commands_adopt_them(tmp_path, catalog, onto_file):
    write_catalog(catalog, tmp_path / "c.jsonl")
    result = run("rules", "suggest", tmp_path / "c.jsonl", "--ontology", onto_file, "--min-support", 20, "--json")
    assert result.exit_code == 0
    found = [json.loads(line) for line in result.output.splitlines()]
    boys = [s for s in found if s["kind"] == "implies" and "gender = Boys then age_group is Kids-Boys" in s["detail"]]
    assert boys and boys[0]["confidence"] == 1.0 and boys[0]["exceptions"] == 0
    import shlex

    args = shlex.split(boys[0]["command"])[1:]
    assert run(*args).exit_code == 0
    again = run("rules", "suggest", tmp_path / "c.jsonl", "--ontology", onto_file, "--min-support", 20, "--json")
    assert boys[0]["command"] not in again.output                    # an adopted rule is not suggested again
    assert run("rules", "check", tmp_path / "c.jsonl", "--ontology", onto_file).exit_code == 0


def test_rules_take_effect_without_training_again(fitted, catalog, tmp_path):
    from kgattr import AttributeCompleter

    path = tmp_path / "o.ttl"
    save_ontology(fitted.ontology_, path)
    model = copy_with_ontology(fitted, load_ontology(path))
    model.save(tmp_path / "m")
    sku = catalog.products[0].sku
    [pc] = AttributeCompleter.load(tmp_path / "m").complete([sku])
    target = next(c for c in pc.completions if c.value is not None)
    condition = next(iter(catalog[sku].attributes.items()))
    rule = make_rule(load_ontology(path), "excludes", condition="=".join(condition),
                     consequence=f"{target.attribute}={target.value}")
    add_rule(path, rule)
    [after] = AttributeCompleter.load(tmp_path / "m").complete([sku])
    again = next(c for c in after.completions if c.attribute == target.attribute)
    assert again.value != target.value and {"value": target.value, "rule": rule.id} in again.rejected
    path.unlink()                                          # gone: the copy saved with the model applies
    [old] = AttributeCompleter.load(tmp_path / "m").complete([sku])
    assert next(c for c in old.completions if c.attribute == target.attribute).value == target.value


def copy_with_ontology(fitted, onto):
    import copy

    model = copy.copy(fitted)
    model.ontology_, model.rules_ = onto, RuleSet(onto)
    return model


def test_make_rule_rejects_what_it_cannot_read(onto_file):
    onto = load_ontology(onto_file)
    with pytest.raises(RuleError, match="--if takes ATTRIBUTE=VALUE"):
        make_rule(onto, "implies", condition="gender", consequence="age_group=Adults-Men")
    with pytest.raises(RuleError, match="above --max"):
        make_rule(onto, "range", attribute="year", low=2020, high=2010)
    with pytest.raises(RuleError, match="same attribute"):
        make_rule(onto, "excludes", condition="gender=Men", consequence="gender=Women")
