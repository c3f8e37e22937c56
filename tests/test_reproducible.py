"""One seed, one catalog: byte-identical model directories and completions, run after run."""
import json

import pytest

from kgattr import AttributeCompleter


@pytest.fixture(scope="module")
def twice(catalog, tiny_bert, tmp_path_factory):
    """Two models of the same catalog and seed: the first fit encodes the text, the second reads the cache.

    160 products in batches of 32 make 5 steps an epoch, so 2 epochs are a 10-step schedule: its single warm-up
    step once made OneCycleLR divide by zero.
    """
    root = tmp_path_factory.mktemp("twice")
    out = []
    for name in "ab":
        completer = AttributeCompleter(text_model=tiny_bert, hidden_channels=16, epochs=2, neighbours=5,
                                       min_attribute_count=5, cache_dir=root / "cache").fit(catalog)
        completer.save(root / name)
        out.append((completer, root / name))
    return out


def test_two_epochs_train(twice):
    assert [len(completer.history_) for completer, _ in twice] == [2, 2]


def test_same_seed_writes_the_same_bytes(twice, catalog):
    (_, first), (_, second) = twice
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert [n for n in names if (first / n).read_bytes() != (second / n).read_bytes()] == []
    imputed = [json.dumps([pc.to_json() for pc in AttributeCompleter.load(model).impute(catalog)])
               for model in (first, second)]
    assert imputed[0] == imputed[1]
