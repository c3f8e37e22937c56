import numpy as np
import torch

from kgattr.engine.model import FusionGNN
from kgattr.engine.train import Neighbours, Pool, neighbour_votes


def test_neighbour_votes_share_among_neighbours_with_the_attribute():
    import scipy.sparse as sp

    value_attribute = np.array([0, 0, 1])
    values = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float32))
    index = np.array([[0, 1, 2], [2, -1, -1]])
    score = np.ones((2, 3), dtype=np.float32)
    # listed nearby: row 0 has product 1 just before it and product 0 two places before, row 1 has product 1 after
    # a second listing (same category) where row 0 has no one nearby
    sequence = np.stack([[[1, 0, -1, -1], [-1, -1, 1, -1]], [[-1] * 4, [2, -1, -1, -1]]], 1)
    votes = neighbour_votes(Neighbours(index, score, sequence), Pool(torch.zeros(3, 1), values, value_attribute),
                            sharpness=0.05)
    assert votes.shape == (2, 3, 6)
    assert torch.allclose(votes[0, :, 1], torch.tensor([2 / 3, 1 / 3, 1.0]))
    assert torch.allclose(votes[1, :, 1], torch.tensor([1.0, 0.0, 0.0]))
    # 1/distance: product 1 weighs 1, product 0 weighs 1/2; only product 0 has attribute 1
    assert torch.allclose(votes[0, :, 2], torch.tensor([1 / 3, 2 / 3, 1.0]))
    assert torch.allclose(votes[0, :, 3], torch.tensor([1 / 5, 4 / 5, 1.0]))
    assert torch.allclose(votes[1, :, 2], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(votes[0, :, 4:], torch.zeros(3, 2))
    assert torch.allclose(votes[1, :, 4], torch.tensor([1.0, 0.0, 0.0]))


def test_model_repr_and_config():
    m = FusionGNN(text_dim=8, lexical_size=20, num_categories=3, num_values=5, num_attributes=2,
                  value_attribute=[0, 0, 0, 1, 1], hidden_channels=16)
    assert repr(m) == "FusionGNN(text_dim=8, lexical_size=20, num_values=5, hidden_channels=16)"
    assert FusionGNN(**m.get_config()).get_config() == m.get_config()


def test_linear_scorer_matches_liblinear_and_round_trips():
    import scipy.sparse as sp
    from sklearn.svm import LinearSVC

    from kgattr.engine.linear import LinearTextScorer, process_map

    n, terms, title_size = 300, 40, 10
    x = sp.random(n, terms, density=0.2, random_state=0, format="csr", dtype=np.float32)
    # attribute 0: values 0-2 (multi-class); attribute 1: values 3-4 (binary); attribute 2: value 5 only;
    # value 6 of attribute 2 never held by a training cell
    value_attribute = np.array([0, 0, 0, 1, 1, 2, 2])
    a0 = np.asarray(x[:, :3].argmax(1)).ravel()
    a1 = 3 + (np.asarray(x[:, 5].todense()).ravel() > 0)
    rows = np.concatenate([np.arange(n)] * 3)
    values = np.concatenate([a0, a1, np.full(n, 5)])
    scorer = LinearTextScorer(C=0.5, description_weights=2 * terms, min_weight=0.0).fit(
        x, rows, values, value_attribute, title_size)
    scores = scorer.decision(x)
    title = x[:, :title_size]
    expected = LinearSVC(C=0.5).fit(title, a0).decision_function(title)  # 3 values x 40 terms > 80: title terms only
    assert np.allclose(scores[:, :3], expected, atol=1e-5)
    d = LinearSVC(C=0.5).fit(x, a1).decision_function(x)                  # 2 values: every term
    assert np.allclose(scores[:, 4] - scores[:, 3], d, atol=1e-5)
    assert (scores[:, 5] > scores[:, 6]).all() and (scores[:, 6] == scorer.unseen_score).all()
    assert scorer.weight_[title_size:, :3].nnz == 0
    again = LinearTextScorer.from_state(scorer.get_state())
    assert np.array_equal(again.decision(x), scores)
    # one attribute's values alone score as they do among all (the same terms summed in the same order)
    assert np.array_equal(scorer.decision(x[5:9], slice(3, 5)), scores[5:9, 3:5])
    pruned = LinearTextScorer(C=0.5, description_weights=2 * terms, min_weight=0.05).fit(
        x, rows, values, value_attribute, title_size)
    assert 0 < pruned.weight_.nnz < scorer.weight_.nnz and np.abs(pruned.weight_.data).min() >= 0.05
    # fitted on two processes: the same weights, bit for bit
    spread = LinearTextScorer(C=0.5, description_weights=2 * terms, min_weight=0.0).fit(
        x, rows, values, value_attribute, title_size, map=process_map(2))
    assert (spread.weight_ != scorer.weight_).nnz == 0 and np.array_equal(spread.bias_, scorer.bias_)


def test_linear_scorer_caps_rows_class_by_class():
    import scipy.sparse as sp
    from sklearn.svm import LinearSVC

    from kgattr.engine.linear import LinearTextScorer, capped_rows

    labels = np.array([0] * 100 + [1] * 5 + [2] * 30 + [3])
    kept = capped_rows(labels, 50, seed=0)
    assert len(kept) == 50 and np.array_equal(kept, np.unique(kept))
    assert np.bincount(labels[kept]).tolist() == [22, 5, 22, 1]          # rare values whole, the rest shared out
    assert np.array_equal(capped_rows(labels, 136, seed=0), np.arange(136))
    assert np.array_equal(capped_rows(labels, 50, seed=0), kept)           # the same draw every time
    # an attribute over the cap learns exactly what an SVM of its kept rows learns
    n, terms = 200, 30
    x = sp.random(n, terms, density=0.3, random_state=1, format="csr", dtype=np.float32)
    values = np.asarray(x[:, :3].argmax(1)).ravel()
    scorer = LinearTextScorer(description_weights=10 * terms, min_weight=0.0, max_rows=80).fit(
        x, np.arange(n), values, np.zeros(3, np.int64), terms)
    keep = capped_rows(values, 80, seed=0)
    expected = LinearSVC(C=0.5, random_state=0).fit(x[keep], values[keep]).decision_function(x)
    assert np.allclose(scorer.decision(x), expected, atol=1e-5)
    assert scorer.capped_ == [0]
    # fitted again on more cells, a capped attribute keeps the weights it has; one under the cap learns afresh
    part = LinearTextScorer(description_weights=10 * terms, min_weight=0.0, max_rows=80).fit(
        x, np.arange(150), values[:150], np.zeros(3, np.int64), terms)
    again = LinearTextScorer(description_weights=10 * terms, min_weight=0.0, max_rows=80).fit(
        x, np.arange(n), values, np.zeros(3, np.int64), terms, keep=part)
    assert again.capped_ == [0] and np.array_equal(again.decision(x), part.decision(x))
    assert not np.array_equal(scorer.decision(x), part.decision(x))
    wide = lambda: LinearTextScorer(description_weights=10 * terms, min_weight=0.0, max_rows=500)
    first = wide().fit(x, np.arange(150), values[:150], np.zeros(3, np.int64), terms)
    assert first.capped_ == [] and np.array_equal(
        wide().fit(x, np.arange(n), values, np.zeros(3, np.int64), terms, keep=first).decision(x),
        wide().fit(x, np.arange(n), values, np.zeros(3, np.int64), terms).decision(x))


def test_an_epoch_of_a_large_catalog_is_a_draw_of_its_products(catalog, tiny_bert, tmp_path, monkeypatch, caplog):
    import logging

    import kgattr.engine.crossfit as crossfit
    from kgattr import AttributeCompleter

    monkeypatch.setattr(crossfit, "EPOCH_PRODUCTS", 64)              # 160 products, batches of 32: 2 of 5 a epoch
    with caplog.at_level(logging.INFO, logger="kgattr.engine.train"):
        AttributeCompleter(text_model=tiny_bert, hidden_channels=16, epochs=2, neighbours=5, min_attribute_count=5,
                           cache_dir=tmp_path).fit(catalog)
    assert [m for m in caplog.messages if m.startswith("epoch")] == [
        m for m in caplog.messages if m.startswith("epoch") and m.endswith("(2 batches)")]
    assert len([m for m in caplog.messages if m.startswith("epoch")]) == 2
