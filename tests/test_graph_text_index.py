import numpy as np
import pandas as pd
import pytest

from kgattr.engine.graph import CatalogGraph, SkuTable, build_graph, listing_order, sku_key
from kgattr.engine.index import NeighbourIndex, SequenceIndex
from kgattr.text.encoder import TextEncoder
from kgattr.text.lexical import LexicalFeatures


def test_graph_counts_match_crosstab(catalog):
    g = build_graph(catalog, min_cooccurrence=1)
    assert g.has_value.shape[1] == sum(len(p.attributes) for p in catalog)
    # brute-force co-occurrence of two attribute columns
    frame = pd.DataFrame([p.attributes for p in catalog])
    table = pd.crosstab(frame["gender"], frame["age_group"])
    vindex = g.value_index()
    n = len(catalog)
    counts = frame.notna().astype(int)
    pmi = {(int(u), int(v)): w for (u, v), w in zip(g.cooccurs.T, g.pmi)}
    for gender in table.index:
        for age in table.columns:
            c = table.loc[gender, age]
            u, v = vindex[("gender", gender)], vindex[("age_group", age)]
            expected = np.log(c * n / ((frame["gender"] == gender).sum() * (frame["age_group"] == age).sum())) if c else -1
            if expected > 0:
                assert pmi[(u, v)] == pytest.approx(expected, rel=1e-5)
            else:
                assert (u, v) not in pmi
    assert counts.shape[0] == n


def test_graph_save_load_and_exports(tmp_path, catalog):
    g = build_graph(catalog)
    g.save(tmp_path / "g", graphml=True)
    back = CatalogGraph.load(tmp_path / "g")
    assert back.values == g.values and list(back.skus) == list(g.skus)
    assert np.array_equal(back.cooccurs, g.cooccurs) and np.array_equal(back.listing, g.listing)
    assert [g.skus[i] for i in g.listing] == sorted(g.skus, key=sku_key)
    assert back.skus.rows([g.skus[3], "no such sku", g.skus[0]]).tolist() == [3, -1, 0]
    data = g.to_hetero()
    assert data["product"].num_nodes == len(catalog)
    assert data["value", "rev_has_value", "product"].edge_index.shape[1] == g.has_value.shape[1]
    import networkx as nx

    nxg = nx.read_graphml(tmp_path / "g" / "graph.graphml")
    assert sum(1 for _, d in nxg.nodes(data=True) if d["type"] == "product") == len(catalog)


@pytest.mark.parametrize("field", ["title", "description"])
def test_lexical_features_match_scikit_learn(catalog, field):
    from sklearn.feature_extraction.text import TfidfVectorizer

    ours = LexicalFeatures(min_df=1).fit(catalog)
    x = ours.transform(catalog).toarray()
    prefix = field[0] + ":"
    cols = [i for t, i in ours.vocabulary_.items() if t.startswith(prefix)]
    docs = [getattr(p, field) for p in catalog]
    ref = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                          vocabulary=[t[2:] for t, i in ours.vocabulary_.items() if t.startswith(prefix)]).fit(docs)
    assert np.allclose(ours.idf_[cols], ref.idf_, rtol=1e-5)
    assert np.allclose(x[:, cols], ref.transform(docs).toarray(), atol=1e-5)
    assert np.allclose(np.linalg.norm(x[:, cols], axis=1), 1, atol=1e-5)


def test_lexical_state_round_trip(catalog):
    lex = LexicalFeatures().fit(catalog)
    back = LexicalFeatures.from_state(lex.get_state())
    assert (lex.transform(catalog) != back.transform(catalog)).nnz == 0


def test_text_encoder_shapes_and_cache(tiny_bert, tmp_path, monkeypatch):
    enc = TextEncoder(tiny_bert, max_length=16, cache_dir=tmp_path)
    texts = ["Roadster Men Black Shirt", "Titan Women Watch", "Roadster Men Black Shirt"]
    x = enc.encode(texts)
    assert x.shape == (3, 32) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert np.array_equal(x[0], x[2])
    monkeypatch.setattr(TextEncoder, "encode_batches", lambda *a, **k: pytest.fail("cache missed"))
    assert np.array_equal(enc.encode(texts), x)
    assert repr(enc).startswith("TextEncoder(")


def test_text_encoder_in_chunks_gives_the_vectors_of_one_pass(catalog, tiny_bert, tmp_path, monkeypatch):
    import kgattr.text.encoder as encoder

    texts = [p.text for p in catalog.products[:150]] * 2                # 150 distinct texts, each twice
    whole = TextEncoder(tiny_bert, max_length=16, batch_size=8, cache_dir=False).encode(texts)
    monkeypatch.setattr(encoder, "CHUNK", 20)                           # 2 batches and a part: 16 texts a chunk
    enc = TextEncoder(tiny_bert, max_length=16, batch_size=8, cache_dir=tmp_path)
    enc.encode(texts[:37])                                               # a cache that holds some of them
    calls = []
    chunked = enc.encode(texts, compute=lambda batch: calls.append(len(batch)) or enc.encode_batches(batch))
    assert np.array_equal(chunked, whole) and chunked.dtype == np.float32
    assert calls == [16] * 7 + [1]                                       # 113 not cached, whole batches a call
    monkeypatch.setattr(TextEncoder, "encode_batches", lambda *a, **k: pytest.fail("cache missed"))
    assert np.array_equal(enc.encode(texts[::-1]), whole[::-1])


def test_neighbour_index_matches_brute_force():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 8)).astype(np.float32)
    queries = base[:10]
    index = NeighbourIndex().add(base)
    hits = index.search(queries, 4, exclude=np.arange(10))
    sims = queries @ base.T
    sims[np.arange(10), np.arange(10)] = -np.inf
    expected = np.argsort(-sims, axis=1)[:, :4]
    assert np.array_equal(hits.index, expected)
    assert np.allclose(hits.score, np.take_along_axis(sims, expected, 1), atol=1e-4)
    with pytest.raises(ValueError, match="two-dimensional"):
        index.search(queries[0], 3)


def test_value_matcher_equals_regex_alternation(catalog):
    import re

    from kgattr.text.lexical import ValueMatcher

    values = sorted({v for p in catalog for v in p.attributes.values()}) + ["Navy", "Navy Blue", "Blue", "T-shirt"]
    matcher = ValueMatcher(values)
    alternation = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, sorted({v.lower() for v in values}, key=len,
                                                                                reverse=True))) + r")(?!\w)")
    texts = [f"{p.title}. {p.description}" for p in catalog] + ["A navy blue t-shirt, blue-ish", "Ünïcode navy"]
    for text in texts:
        expected = {i for m in alternation.finditer(text.lower()) for i, v in enumerate(values) if v.lower() == m.group(0)}
        assert matcher.find(text) == expected, text
    assert matcher.find("A Navy Blue shirt") == {i for i, v in enumerate(values) if v == "Navy Blue"}
    assert matcher.transform(["navy", "nothing"]).toarray().sum() == 1


def test_neighbour_index_reconstruct():
    base = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    assert np.array_equal(NeighbourIndex().add(base).reconstruct(np.array([4, 0])), base[[4, 0]])


def test_sku_table_finds_skus_by_their_bytes():
    skus = ["C10", "é-1", "C1", "a", "C100"]
    table = SkuTable.of(skus)
    assert list(table) == skus and table[1] == "é-1" and table[-1] == "C100" and len(table) == 5
    assert table.rows(["C1", "C1000", "C", "", "é-1", "C100"]).tolist() == [2, -1, -1, -1, 1, 4]  # longer: not cut
    assert table.get("a") == 3 and "C10" in table and "C1 " not in table
    empty = SkuTable.of([])
    assert len(empty) == 0 and empty.rows(["x"]).tolist() == [-1] and list(empty) == []


def test_sku_key_sorts_numbers_by_value():
    assert sorted(["A10", "a9", "10", "9", "B1"], key=sku_key) == ["9", "10", "a9", "A10", "B1"]


def test_sequence_index_neighbours_either_side_nearest_first():
    skus = ["10", "2", "A9", "A10", "1", "3"]               # in order: 1 2 3 10 A9 A10
    index = SequenceIndex(skus).search(["2", "5", "A10"], 2)
    assert index.tolist() == [[4, -1, 5, 0],                # stored: itself left out
                              [5, 1, 0, 2],                 # new: between 3 and 10
                              [2, 0, -1, -1]]               # last in order: nothing after


def test_sequence_index_stays_within_a_group():
    skus = ["1", "2", "3", "4", "5"]
    groups = [0, 1, 0, 1, 0]
    index = SequenceIndex(skus, groups).search(["3", "4", "6", "2"], 1, [0, 1, 0, 2])
    assert index.tolist() == [[0, 4],                       # 1 and 5: 2 and 4 are in another group
                              [1, -1],
                              [4, -1],                      # new in group a: after 5
                              [-1, -1]]                     # a group with nothing stored


def test_sequence_index_from_a_kept_order_is_the_same():
    skus = ["b7", "a10", "a9", "b2", "a1", "c3", "b10"]
    groups = [1, 0, 0, 1, 0, 2, 1]
    order = listing_order(skus)
    queries, where = ["a9", "b3", "b10", "z", "a1"], [0, 1, 1, 2, 0]
    fresh = SequenceIndex(skus, groups).search(queries, 2, where)
    kept = SequenceIndex(SkuTable.of(skus), groups, order).search(queries, 2, where)
    assert np.array_equal(fresh, kept)
    assert fresh[0].tolist() == [4, -1, 1, -1]                # a1 before a9, a10 after


def test_joined_search_finds_nearly_what_exact_search_finds():
    from kgattr.engine.index import joined_search

    rng = np.random.default_rng(0)                                      # 40 clusters of 100 points in 16 dimensions
    centres = rng.normal(size=(40, 16))
    v = (np.repeat(centres, 100, 0) + 0.3 * rng.normal(size=(4000, 16))).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    exact = NeighbourIndex().add(v).search_stored(10)
    index = NeighbourIndex(exact_limit=1000).add(v)
    assert index.approximate and index.index_.nlist == 63
    found = index.search_stored(10)
    assert found.index.shape == (4000, 10) and found.score.dtype == np.float32
    assert not (found.index == np.arange(4000)[:, None]).any()          # never itself
    assert np.all(np.diff(found.score, axis=1) <= 0)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.index, found.index)])
    assert recall > 0.95
    assert np.allclose(np.take_along_axis(v @ v.T, found.index, 1), found.score, atol=1e-5)
    one = joined_search(NeighbourIndex(exact_limit=0).add(v[:3]).index_, 5)   # fewer vectors than neighbours
    assert (one.index[:, 2:] == -1).all() and (one.index[:, :2] >= 0).all()


def test_joined_search_compares_category_dimensions_by_position():
    from kgattr.engine.index import joined_search, product_vectors

    rng = np.random.default_rng(1)
    text = rng.normal(size=(3000, 16)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    category = rng.integers(-1, 12, size=3000)                       # -1: a category the graph lacks, no one-hot
    v = product_vectors(text, category, 12, 0.5)
    index = NeighbourIndex(exact_limit=1000).add(v).index_
    whole, split = joined_search(index, 10), joined_search(index, 10, dense=16)
    np.testing.assert_allclose(split.score, whole.score, atol=1e-5)
    assert np.mean(split.index == whole.index) > 0.99                  # only float ties may fall otherwise
    assert np.allclose(np.take_along_axis(v @ v.T, split.index, 1), split.score, atol=1e-5)


def test_index_moved_to_disk_searches_and_saves_the_same(tmp_path):
    rng = np.random.default_rng(2)
    v = rng.normal(size=(500, 8)).astype(np.float32)
    index = NeighbourIndex(exact_limit=100).add(v)
    before = index.search(v[:20], 5)
    index.save(tmp_path / "in-memory.faiss")
    index.to_disk()
    assert np.array_equal(index.search(v[:20], 5).index, before.index)
    index.save(tmp_path / "from-disk.faiss")
    assert (tmp_path / "from-disk.faiss").read_bytes() == (tmp_path / "in-memory.faiss").read_bytes()
    loaded = NeighbourIndex.load(tmp_path / "from-disk.faiss")
    np.testing.assert_array_equal(loaded.reconstruct(np.arange(500)), v)
