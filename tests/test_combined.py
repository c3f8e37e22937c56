"""The combined extractor: members chosen per attribute on held-out titles, copies of unseen values, persistence."""
import json

import numpy as np

from kgattr.extract.combined import CombinedExtractor, load_extractor, orders
from kgattr.extract.evaluation import score_extraction
from kgattr.extract.extraction import DictionaryExtractor, Lexicon, held_out
from kgattr.io.catalog import Product

BRANDS = ["Acme", "Borg", "Cyberdyne", "Dynatron", "Eon", "Ferro"]
COLOURS = ["Black", "White", "Red"]


def parts(num: int, seed: int, volts=(3, 5, 9, 12, 15, 24, 36)) -> list[Product]:
    """Synthetic parts: the brand and the voltage stated in the title; a colour always stated, and a finish
    whose words (colour names) the dictionary finds but which is never stated (the colour's word is not the
    finish)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num):
        brand, colour, volt = BRANDS[rng.integers(6)], COLOURS[rng.integers(3)], int(rng.choice(volts))
        finish = COLOURS[(COLOURS.index(colour) + 1) % 3]
        out.append(Product(f"P{seed}-{i}", f"{brand} X{i} relay {volt}V {colour.lower()} case",
                           attributes={"brand": brand, "voltage": f"{volt} V", "colour": colour, "finish": finish}))
    return out


def test_orders_cover_every_subset_and_abstaining():
    assert orders("ab") == [(), ("a",), ("b",), ("a", "b"), ("b", "a")]


def test_never_below_the_dictionary_where_the_dictionary_is_right():
    train, test = held_out(parts(300, seed=0), 0.2, seed=0)
    combined = CombinedExtractor(prior_cells=2).fit(train)
    dictionary = DictionaryExtractor().fit(train)
    names = ["brand", "voltage", "colour", "finish"]
    seen = Lexicon.from_catalog(train)
    ours = score_extraction(test, combined.extract(test), names, seen)
    theirs = score_extraction(test, dictionary.extract(test), names, seen)
    assert ours["f1"] >= theirs["f1"] + 0.10 and ours["macro_f1"] >= theirs["macro_f1"]
    assert ours["attributes"]["brand"]["f1"] == theirs["attributes"]["brand"]["f1"] == 1.0
    # the dictionary reads a colour word as the finish too, always wrongly: the combined extractor abstains
    assert theirs["attributes"]["finish"]["fp"] > 0 and ours["attributes"]["finish"]["fp"] == 0


def test_copies_a_unit_value_never_seen_in_training(tmp_path):
    combined = CombinedExtractor(prior_cells=2).fit(parts(300, seed=1))
    assert "48 V" not in combined.lexicon_.values["voltage"]
    [spans] = combined.extract([Product("new", "Acme Z1 relay 48V black case")])
    [volt] = [s for s in spans if s.attribute == "voltage"]
    assert (volt.value, volt.known) == ("48 V", False) and "48V" in volt.text
    combined.save(tmp_path / "ex")
    assert json.loads((tmp_path / "ex" / "config.json").read_text())["kind"] == "kgattr-combined-extractor"
    loaded = load_extractor(tmp_path / "ex")
    fresh = parts(20, seed=2, volts=(48, 60))
    assert loaded.extract(fresh) == combined.extract(fresh)
    assert {s.value for found in loaded.extract(fresh) for s in found if s.attribute == "voltage"} == {"48 V", "60 V"}


def test_a_save_replaces_an_extractor_whole_and_refuses_other_folders(tmp_path, monkeypatch):
    import pytest

    from kgattr.exceptions import KgattrError

    combined = CombinedExtractor(prior_cells=2).fit(parts(120, seed=3))
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(KgattrError, match="not a kgattr extractor"):
        combined.save(other)
    assert [p.name for p in other.iterdir()] == ["todo.txt"]

    target = tmp_path / "ex"
    combined.save(target)
    (target / "stale.json").write_text("{}")                 # a file of an earlier save: gone after the next
    before = (target / "config.json").read_bytes()
    monkeypatch.setattr(combined.copier_, "get_state", lambda: 1 / 0)      # fails half-way through writing
    with pytest.raises(ZeroDivisionError):
        combined.save(target)
    assert (target / "config.json").read_bytes() == before and (target / "stale.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex", "notes"]   # no temporary folder left
    monkeypatch.undo()
    combined.save(target)
    assert not (target / "stale.json").exists() and (target / "config.json").read_bytes() == before
