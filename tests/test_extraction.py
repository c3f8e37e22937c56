"""Span tagging by distant supervision, the extractor and its use inside completion."""
import json
from pathlib import Path

import numpy as np
import pytest

from kgattr.extract.evaluation import score_extraction
from kgattr.extract.extraction import (B, I, DictionaryExtractor, Lexicon, Span, decode_tags, merge_spans, tag_spans,
                                      token_tags, word_bounds)
from kgattr.io.catalog import Product


def spans_text(text, values):
    return [(text[s:e], a) for s, e, a in tag_spans(text, values)]


def test_tagging_longest_match_wins_and_equal_extents_are_shared():
    text = "Navy Blue shirt with blue buttons"
    assert spans_text(text, {"base_colour": "Navy Blue", "colour1": "Blue"}) == \
        [("Navy Blue", "base_colour"), ("blue", "colour1")]
    assert spans_text("Navy Blue shirt", {"base_colour": "Navy Blue", "colour1": "Navy Blue"}) == \
        [("Navy Blue", "base_colour"), ("Navy Blue", "colour1")]


def test_tagging_every_occurrence_case_spacing_and_word_boundaries():
    text = "MEN navy-blue Shirt for Men, not Women; men"
    assert spans_text(text, {"gender": "Men", "base_colour": "Navy  Blue"}) == \
        [("MEN", "gender"), ("navy-blue", "base_colour"), ("Men", "gender"), ("men", "gender")]
    assert tag_spans("Cotton", {"Fabric": "C"}) == []                       # too short to be trusted


def test_tagging_unicode_offsets_stay_exact():
    text = "İstanbul Café Crème dress in crème"
    found = tag_spans(text, {"brand": "İstanbul Café", "base_colour": "Crème"})
    assert [(text[s:e], a) for s, e, a in found] == [("İstanbul Café", "brand"), ("Crème", "base_colour"),
                                                     ("crème", "base_colour")]


def test_token_tags_continue_a_value_cut_by_the_window():
    spans = [(0, 9, "base_colour"), (10, 15, "gender")]
    # window 1: [CLS] navy blue [SEP]; window 2 starts inside the value: [CLS] blue men [SEP]
    first = token_tags([(0, 0), (0, 4), (5, 9), (0, 0)], spans, {"base_colour": 0, "gender": 1})
    second = token_tags([(0, 0), (5, 9), (10, 15), (0, 0)], spans, {"base_colour": 0, "gender": 1})
    assert first[:, 0].tolist() == [-100, B, I, -100]
    assert second[:, 0].tolist() == [-100, I, 0, -100] and second[:, 1].tolist() == [-100, 0, B, -100]


def test_decoding_merges_windows_and_widens_to_words():
    probs = np.zeros((4, 1, 3), np.float32)
    probs[:, 0] = [[1, 0, 0], [0.1, 0.9, 0], [0.2, 0.1, 0.7], [1, 0, 0]]
    offsets = [(0, 0), (0, 4), (5, 9), (0, 0)]
    assert decode_tags(probs, offsets) == [(0, 0, 9, pytest.approx(0.85))]
    assert merge_spans([[5, 9, 0.6], [0, 7, 0.8], [12, 15, 0.9]]) == [[0, 9, 0.8], [12, 15, 0.9]]
    assert word_bounds("Solid Navyblue, tee", 8, 15) == (6, 14)


def test_lexicon_normalises_case_spacing_and_plural_and_keeps_new_values_apart():
    lexicon = Lexicon({"brand": ["Adidas", "Allen Solly"], "articleType": ["Tshirts"]})
    assert lexicon.lookup("brand", "ADIDAS") == "Adidas"
    assert lexicon.lookup("brand", "allen-solly") == "Allen Solly"
    assert lexicon.lookup("articleType", "Tshirt") == "Tshirts"
    assert lexicon.lookup("brand", "Nautica") is None


def test_dictionary_baseline_and_scoring_count_unwanted_values_as_false_positives():
    train = [Product("1", "Puma Men Black Shoes", attributes={"brand": "Puma", "gender": "Men", "colour": "Black"})]
    test = [Product("2", "Puma Women Black Shoes", attributes={"brand": "Puma", "colour": "Black"}),
            Product("3", "Nike Men Red Shoes", attributes={"brand": "Nike", "gender": "Men", "colour": "Red"})]
    dictionary = DictionaryExtractor().fit(train)
    predicted = dictionary.extract(test)
    assert {(s.attribute, s.value) for s in predicted[0]} == {("brand", "Puma"), ("colour", "Black")}
    extra = predicted[0] + [Span("gender", "Women", False, "title", 5, 10, "Women", 0.9),
                            Span("brand", "Nike", False, "title", 0, 4, "Nike", 0.9)]
    report = score_extraction(test, [extra, [predicted[1][0]]], ["brand", "gender", "colour"],
                              Lexicon.from_catalog(train))
    # tp: Puma, Black, Men; fp: gender=Women (product has no gender); fn: Nike, Red
    assert (report["tp"], report["fp"], report["fn"]) == (3, 1, 2)
    assert (report["unseen"], report["unseen_found"]) == (2, 0)        # Nike and Red never seen in training


@pytest.fixture(scope="module")
def extractor(tiny_bert, tmp_path_factory):
    from kgattr.extract.tagger import Extractor
    from kgattr.io.datasets import make_catalog

    path = tmp_path_factory.mktemp("extractor")
    Extractor(text_model=tiny_bert, min_spans=5, epochs=2, lr=1e-3, max_length=16, stride=4,
              threshold=0.0).fit(make_catalog(120, seed=3)).save(path)
    return path


def test_extractor_round_trip_and_spans_point_into_the_text(extractor, catalog):
    from kgattr.extract.tagger import Extractor

    loaded = Extractor.load(extractor)
    spans = loaded.extract(catalog.products[:20])
    assert sorted(json.loads((extractor / "config.json").read_text())) == \
        ["attributes", "format", "history", "kind", "params", "spans_tagged"]
    assert any(spans)
    for p, found in zip(catalog.products, spans):
        for s in found:
            assert getattr(p, s.field)[s.start:s.end] == s.text and 0 <= s.confidence <= 1
            assert s.known == (loaded.lexicon_.lookup(s.attribute, s.text) == s.value)
    assert loaded.extract(catalog.products[:20]) == spans                          # deterministic


def test_lora_adapters_are_merged_into_a_plain_encoder(tiny_bert, tmp_path):
    pytest.importorskip("peft")
    from kgattr.extract.tagger import Extractor
    from kgattr.io.datasets import make_catalog

    ex = Extractor(text_model=tiny_bert, min_spans=5, lora=4, max_windows=64).fit(make_catalog(60, seed=2))
    ex.save(tmp_path)
    assert not any("lora" in k for k in ex.model_.encoder.state_dict())
    Extractor.load(tmp_path).extract(make_catalog(5, seed=2).products)


def test_extractor_reads_titles_only_and_unseen_catalogs(extractor):
    from kgattr.extract.tagger import Extractor

    spans = Extractor.load(extractor).extract([Product("x", "Zzyzx Men Blue T-shirt"), Product("y", "")])
    assert len(spans) == 2 and spans[1] == [] and all(s.field == "title" for s in spans[0])


def test_completer_uses_the_extractor_as_a_score_and_as_evidence(catalog, tiny_bert, extractor, tmp_path):
    from kgattr import AttributeCompleter

    model = AttributeCompleter(text_model=tiny_bert, hidden_channels=32, epochs=4, neighbours=5, min_attribute_count=5,
                               extractor=str(extractor)).fit(catalog)
    assert model.mix_.shape[-1] == 4 and model.extracted_ is not None      # GNN, linear, vote, extractor
    model.save(tmp_path / "m")
    loaded = AttributeCompleter.load(tmp_path / "m")
    stated = [c for pc in loaded.impute(catalog) for c in pc.completions if c.evidence.get("extracted")]
    assert stated
    for c in stated:
        span = c.evidence["extracted"]
        assert span["text"] in c.evidence["text"]
    fresh = Product("new-1", catalog.products[0].title, catalog.products[0].description, catalog.products[0].category)
    from kgattr.io.catalog import Catalog

    result = loaded.impute(Catalog([fresh]))
    assert result[0].completions


def test_extract_commands_train_run_and_evaluate(tmp_path, tiny_bert):
    from kgattr.io.writers import write_catalog
    from kgattr.io.datasets import make_catalog
    from test_cli import run

    path = tmp_path / "catalog.jsonl"
    write_catalog(make_catalog(120, seed=4), path)
    out = tmp_path / "ex"
    result = run("extract", "train", path, "--out", out, "--text-model", tiny_bert, "--max-windows", 200,
                 "--ontology", Path(__file__).parents[1] / "ontology" / "sample.ttl")
    assert result.exit_code == 0, result.output
    assert "trained on 120 products" in result.output
    assert json.loads((out / "config.json").read_text())["kind"] == "kgattr-combined-extractor"
    result = run("extract", "run", "--model", out, path, "-o", tmp_path / "spans.jsonl")
    assert result.exit_code == 0 and "spans in 120 products" in result.output
    for line in (tmp_path / "spans.jsonl").read_text().splitlines():
        assert set(json.loads(line)) == {"sku", "attribute", "value", "known", "field", "start", "end", "text",
                                         "confidence"}
    assert run("extract", "run", "--model", out, "--text", "Puma Men Black Shoes").exit_code == 0
    assert run("extract", "run", "--model", tmp_path, "--text", "x").exit_code == 2       # not an extractor
    result = run("extract", "evaluate", path, "--text-model", tiny_bert, "--max-windows", 200,
                 "--report", tmp_path / "report")
    assert result.exit_code == 0 and "| dictionary |" in result.output and "macro F1" in result.output
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert {"combined", "dictionary", "tagger", "copier", "combined (titles only)"} <= set(report["methods"])
    assert report["products"]["train"] + report["products"]["test"] == 120
    result = run("extract", "evaluate", path, "--model", out)
    assert result.exit_code == 0 and "| combined |" in result.output


def test_evaluate_a_trained_extractor_on_another_catalog(catalog):
    from kgattr.extract.combined import CombinedExtractor
    from kgattr.extract.evaluation import evaluate_extraction
    from kgattr.io.datasets import make_catalog

    fitted = CombinedExtractor().fit(make_catalog(120, seed=3).products)
    report = evaluate_extraction(catalog.products, fitted)
    assert report["products"] == {"train": 0, "test": len(catalog)}
    assert set(report["methods"]) == {f"{m}{s}" for m in ("dictionary", "copier", "combined")
                                      for s in ("", " (titles only)")}
    assert report["methods"]["dictionary"]["tp"] > 0
    assert 0 < report["methods"]["combined"]["macro_f1"] <= 1


def test_tagger_trains_until_the_held_out_loss_no_longer_falls(tiny_bert):
    from kgattr.extract.tagger import MAX_EPOCHS, Extractor
    from kgattr.io.datasets import make_catalog
    from kgattr.io.schedule import Patience

    tagger = Extractor(text_model=tiny_bert, max_length=16, stride=4).fit(make_catalog(60, seed=5))
    assert 1 <= len(tagger.history_) <= MAX_EPOCHS and len(tagger.heldout_losses_) == len(tagger.history_)
    assert tagger.min_spans == 1
    watch = Patience(patience=1)
    assert [watch.update(x, lambda x=x: x) for x in (3.0, 2.0, 2.5)] == [False, False, True] and watch.best == 2.0
