"""Training and imputing with a review store: confirmed values become known, refused ones never come back."""
import json
import subprocess
import sys

import pytest

from kgattr import AttributeCompleter
from kgattr.engine.modelfiles import verify
from kgattr.engine.reviewed import Reviewed
from kgattr.io.writers import write_catalog
from kgattr.io.reviews import ReviewError, ReviewStore


def proposed(completions, sku: str, attribute: str) -> set:
    """Every value shown for a cell: the chosen one, the alternatives and those the rules turned down."""
    for pc in completions:
        if pc.sku == sku:
            for c in pc.completions:
                if c.attribute == attribute:
                    return {c.value} | {a["value"] for a in c.alternatives} | {r["value"] for r in c.rejected}
    return set()


@pytest.fixture(scope="module")
def review(fitted, catalog, tmp_path_factory):
    """A review store filled from ``fitted``'s completions, with one cell accepted, one edited (to the cell's
    first alternative) and one rejected, each of another product. Returns (path, {action: cell})."""
    path = tmp_path_factory.mktemp("review") / "review.sqlite"
    store = ReviewStore(path)
    found = [(pc.sku, c) for pc in fitted.impute(catalog) for c in pc.completions if c.value and c.alternatives]
    store.fill([{"sku": s, "attribute": c.attribute, "category": list(catalog[s].category), "value": c.value,
                 "confidence": c.confidence, "alternatives": c.alternatives, "gain": 0.0} for s, c in found],
               "fixture", auto_fill=1.1, audit_share=0)
    cells, skus = {}, set()
    for action in ("accept", "edit", "reject"):
        sku, c = next((s, c) for s, c in found if s not in skus)
        skus.add(sku)
        value = c.alternatives[0]["value"] if action == "edit" else None
        store.decide(sku, c.attribute, action, "tester", value)
        cells[action] = {"sku": sku, "attribute": c.attribute, "suggested": c.value, "value": value or c.value}
    return path, cells


def test_labels_of_the_store(review):
    path, cells = review
    got = Reviewed.read(path)
    edit, reject = cells["edit"], cells["reject"]
    assert got.confirmed[edit["sku"]] == {edit["attribute"]: edit["value"]}
    assert got.confirmed[cells["accept"]["sku"]] == {cells["accept"]["attribute"]: cells["accept"]["value"]}
    assert got.refused[reject["sku"]] == {(reject["attribute"], reject["suggested"])}
    assert got.refused[edit["sku"]] == {(edit["attribute"], edit["suggested"])}     # the value the edit replaced


def test_fit_with_reviews_learns_and_keeps_refusals(review, fitted, catalog, tmp_path):
    path, cells = review
    completer = AttributeCompleter(**fitted.get_params(), cache_dir=fitted.cache_dir).fit(catalog, reviewed=path)
    edit, reject = cells["edit"], cells["reject"]
    assert catalog[edit["sku"]].attributes.get(edit["attribute"]) is None          # the catalog is untouched
    known = {p.sku: p.attributes for p in completer.products_}
    assert known[edit["sku"]][edit["attribute"]] == edit["value"]
    assert known[cells["accept"]["sku"]][cells["accept"]["attribute"]] == cells["accept"]["value"]
    assert reject["suggested"] not in proposed(completer.complete([reject["sku"]]), reject["sku"],
                                               reject["attribute"])

    completer.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "refused.json").read_text())["refused"]
    assert [reject["sku"], reject["attribute"], reject["suggested"]] in saved
    assert verify(tmp_path / "model") == []                         # listed in the manifest
    loaded = AttributeCompleter.load(tmp_path / "model")
    assert loaded.complete([edit["sku"]])[0].known[edit["attribute"]] == edit["value"]
    for c in (loaded.complete([reject["sku"]]), loaded.impute(catalog)):
        assert reject["suggested"] not in proposed(c, reject["sku"], reject["attribute"])


def test_impute_with_reviews_without_training(review, fitted, catalog):
    path, cells = review
    reject, edit = cells["reject"], cells["edit"]
    before = fitted.impute(catalog)
    assert reject["suggested"] in proposed(before, reject["sku"], reject["attribute"])
    after = {pc.sku: pc for pc in fitted.impute(catalog, reviewed=path)}
    assert after[edit["sku"]].known[edit["attribute"]] == edit["value"]
    assert edit["attribute"] not in {c.attribute for c in after[edit["sku"]].completions}   # no gap any more
    shown = proposed(after.values(), reject["sku"], reject["attribute"])
    assert reject["suggested"] not in shown
    gap = next(c for c in after[reject["sku"]].completions if c.attribute == reject["attribute"])
    assert gap.value is None or gap.value != reject["suggested"]            # the next allowed value, or none


def test_cli_impute_reviewed_and_bad_store(review, served_model, catalog, tmp_path):
    path, cells = review
    write_catalog(catalog, tmp_path / "cat.jsonl")
    out = tmp_path / "out.jsonl"
    run = subprocess.run([sys.executable, "-m", "kgattr", "impute", str(tmp_path / "cat.jsonl"), "--model",
                          str(served_model), "-o", str(out), "--reviewed", str(path), "--min-confidence", "0"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = {r["sku"]: r["attributes"] for r in map(json.loads, out.read_text().splitlines())}
    edit, reject = cells["edit"], cells["reject"]
    assert lines[edit["sku"]][edit["attribute"]] == edit["value"]
    assert lines[reject["sku"]].get(reject["attribute"]) != reject["suggested"]

    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database\n")
    for argv in (["impute", str(tmp_path / "cat.jsonl"), "--model", str(served_model), "-o", str(tmp_path / "x.jsonl")],
                 ["train", str(tmp_path / "cat.jsonl"), "--out", str(tmp_path / "m")]):
        run = subprocess.run([sys.executable, "-m", "kgattr", *argv, "--reviewed", str(bad)], capture_output=True,
                             text=True)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith(f"kgattr: error: {bad}: not a review store"), run.stderr
        assert not (tmp_path / "m").exists() and not (tmp_path / "x.jsonl").exists()


def test_store_that_is_not_a_review_store(tmp_path):
    import sqlite3

    with pytest.raises(ReviewError, match="no such review store"):
        Reviewed.read(tmp_path / "absent.sqlite")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ReviewError, match="not a review store"):
        Reviewed.read(other)
    assert not (tmp_path / "absent.sqlite").exists()
