import re

import numpy as np
import pytest

from kgattr.io.datasets import make_catalog


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    # every cache under pytest's tmp dir, never in the user's home
    monkeypatch.setenv("KGATTR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    np.random.seed(0)


@pytest.fixture(scope="session")
def catalog():
    return make_catalog(160, seed=1)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A randomly initialised 1-layer BERT with a word-level vocabulary of the sample catalog."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    words = set()
    for p in make_catalog(400, seed=0):
        words.update(re.findall(r"\w+|[^\w\s]", f"{p.title} {p.description}".lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def fitted(catalog, tiny_bert, tmp_path_factory):
    from kgattr import AttributeCompleter

    cache = tmp_path_factory.mktemp("fit-cache")
    return AttributeCompleter(text_model=tiny_bert, hidden_channels=32, epochs=4, neighbours=5, min_attribute_count=5,
                              cache_dir=cache).fit(catalog)


@pytest.fixture(scope="session")
def served_model(fitted, tmp_path_factory):
    """The ``fitted`` model saved as a model directory (for kgattr serve)."""
    path = tmp_path_factory.mktemp("serve") / "model"
    fitted.save(path)
    return path
