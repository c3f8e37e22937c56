"""Slow checks on the real Myntra catalog in ../shared (skipped when it is absent). Run: make test-slow."""
from pathlib import Path

import pytest

from kgattr import AttributeCompleter, Catalog, Ontology, RuleSet, read_catalog
from kgattr.ontology.rules import shacl_violations
from kgattr.ontology.mining import induce_ontology

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "myntra-fashion-styles" / "catalog.jsonl.gz"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not REAL.exists(), reason="../shared catalog not present")]


@pytest.fixture(scope="module")
def real():
    return read_catalog(REAL)


def test_reads_whole_catalog(real):
    assert len(real) == 44_441
    assert real["15970"].attributes["Fabric"] == "Cotton"


def test_compiled_rules_agree_with_pyshacl_on_real_products(real):
    """Induced rules (allowed sets, attributes that differ) from part of the catalog plus the implications
    `rules suggest` mines, on more of it."""
    from kgattr.ontology.authoring import make_rule
    from kgattr.ontology.mining import suggest

    part = Catalog(real.products[:3000])
    onto = induce_ontology(Catalog(real.products[:2000]))
    for s in [s for s in suggest(part, onto, min_support=30, min_confidence=0.98) if s.kind == "implies"][:30]:
        opts = dict(zip(s.args[1::2], s.args[2::2]))
        rule = make_rule(onto, "implies", condition=opts["--if"], consequence=opts["--then"],
                         category=opts.get("--category"))
        onto = onto.merge(Ontology(conditionals=[rule]))
    rules = RuleSet(onto)
    compiled = {(v.sku, v.attribute, v.value, v.rule) for v in rules.violations(part)}
    reference = {(v.sku, v.attribute, v.value, v.rule) for v in shacl_violations(part, onto)}
    assert compiled == reference and compiled
    assert any(rule.startswith("implies/") for *_, rule in compiled)
    assert any(rule.startswith("differs/") for *_, rule in compiled)       # colour1 = base_colour, induced


def test_end_to_end_on_a_slice(real, tmp_path):
    part = Catalog(real.products[:1500])
    completer = AttributeCompleter(epochs=2).fit(part)
    completer.save(tmp_path / "m")
    [pc] = AttributeCompleter.load(tmp_path / "m").complete([part.products[0].sku])
    assert {c.attribute for c in pc.completions} and all(0 <= c.confidence <= 1 for c in pc.completions)


def test_extractor_beats_the_dictionary_on_held_out_real_titles(real):
    """A small budget (1,500 products, every attribute counted) already does."""
    import numpy as np

    from kgattr.extract.combined import CombinedExtractor
    from kgattr.extract.evaluation import evaluate_extraction
    from kgattr.extract.tagger import Extractor

    keep = np.sort(np.random.default_rng(0).choice(len(real), 1500, replace=False))
    report = evaluate_extraction([real.products[i] for i in keep], CombinedExtractor(tagger=Extractor()))
    methods = report["methods"]
    assert methods["combined"]["f1"] >= methods["dictionary"]["f1"] + 0.10
    assert methods["combined"]["precision"] > methods["dictionary"]["precision"]
    assert methods["combined (titles only)"]["f1"] > methods["dictionary (titles only)"]["f1"]
