import numpy as np
import pytest

from kgattr.engine.blocks import Blocks
from kgattr.engine.crossfit import (CELLS_PER_ATTRIBUTE, MAX_PER_ATTRIBUTE, MAX_SHARE, MIN_EPOCHS, epoch_budget,
                                   heldout_cells)
from kgattr.engine.mixture import fit_mixture


def _cells(rng, value_attribute, attr, follow):
    """Truth of cells of attributes ``attr``: the argmax of ``follow`` (c, num_values) within the attribute."""
    return np.array([np.flatnonzero(value_attribute == a)[follow[i, value_attribute == a].argmax()]
                     for i, a in enumerate(attr)])


def _blocked(members, truth, value_attribute):
    """fit_mixture's (scores, truth, allowed, blocks) of cells scored densely by ``members`` (c, num_values) each:
    per attribute of the cells, its own columns; every value allowed."""
    blocks = Blocks(truth, value_attribute)
    scores = [blocks.map(lambda cells, columns: m[cells][:, columns]) for m in members]
    return scores, truth, blocks.map(lambda cells, columns: np.ones((len(cells), columns.stop - columns.start), bool)), \
        blocks


def test_blocks_keep_each_cell_over_its_own_attributes_values():
    value_attribute = np.array([0, 0, 1, 1, 1, 3])
    truth = np.array([4, 0, 5, 3, 1])
    blocks = Blocks(truth, value_attribute)
    assert [(a, cells.tolist(), columns) for a, cells, columns in blocks] == \
        [(0, [1, 4], slice(0, 2)), (1, [0, 3], slice(2, 5)), (3, [2], slice(5, 6))]
    dense = np.arange(30, dtype=np.float32).reshape(5, 6)
    scores = blocks.empty()
    for cells in (np.arange(0, 2), np.arange(2, 5)):             # filled batch by batch
        blocks.put(scores, cells, dense[cells])
    for (_, cells, columns), block in zip(blocks, scores):
        assert np.array_equal(block, dense[cells][:, columns])


def _accuracy(weights, scores, truth, value_attribute):
    mixed = sum(s * weights[value_attribute[truth]][:, j:j + 1] for j, s in enumerate(scores))
    top = [np.flatnonzero(value_attribute == value_attribute[t])[mixed[i, value_attribute == value_attribute[t]].argmax()]
           for i, t in enumerate(truth)]
    return float(np.mean(np.array(top) == truth))


def test_mixture_falls_back_on_the_one_member_that_knows_an_attribute():
    rng = np.random.default_rng(2)
    value_attribute = np.repeat(np.arange(2), 4)
    n = 600
    a, b, noise = (rng.normal(size=(n, 8)).astype(np.float32) for _ in range(3))
    attr = np.repeat([0, 1], n // 2)
    # attribute 0 follows member a, attribute 1 member b; the third member is noise for both
    follow = np.where((attr == 0)[:, None], a, b)
    truth = _cells(rng, value_attribute, attr, follow)
    weights = fit_mixture(*_blocked([a, b, noise], truth, value_attribute), 2).weights
    assert weights[0, 0] > 1 and weights[0, 1] < 0.2 * weights[0, 0]
    assert weights[1, 1] > 1 and weights[1, 0] < 0.2 * weights[1, 1]
    # on fresh cells the mix is as accurate as the best member of each attribute (here: perfect)
    a2, b2, n2 = (rng.normal(size=(n, 8)).astype(np.float32) for _ in range(3))
    fresh = _cells(rng, value_attribute, attr, np.where((attr == 0)[:, None], a2, b2))
    assert _accuracy(weights, [a2, b2, n2], fresh, value_attribute) > 0.97


def test_mixture_is_no_worse_than_its_best_member_on_held_out_cells():
    rng = np.random.default_rng(3)
    value_attribute = np.zeros(5, dtype=np.int64)
    n = 400
    signal = rng.normal(size=(n, 5)).astype(np.float32)
    truth = _cells(rng, value_attribute, np.zeros(n, np.int64), signal + rng.normal(scale=0.8, size=signal.shape))
    members = [signal, rng.normal(size=signal.shape).astype(np.float32), rng.normal(size=signal.shape).astype(np.float32)]
    weights = fit_mixture(*_blocked(members, truth, value_attribute), 1,
                          groups=np.arange(n) // 2).weights
    alone = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    assert _accuracy(weights, members, truth, value_attribute) >= _accuracy(alone, members, truth, value_attribute) - 0.01


def test_the_held_out_share_grows_on_small_catalogs_and_is_capped_per_attribute_on_large_ones():
    small = np.ones(4_000, bool)                # 4 attributes x 1,000 cells: 5% would leave 50 each
    held = heldout_cells(small, np.arange(4_000) % 4, share=0.05, num_targets=8, seed=0)
    assert abs(held.mean() - CELLS_PER_ATTRIBUTE * 8 / 4_000) < 0.02
    tiny = heldout_cells(np.ones(200, bool), np.zeros(200, int), share=0.05, num_targets=8, seed=0)
    assert tiny.mean() <= MAX_SHARE + 0.05
    # 300,000 cells: one attribute of 200,000 (5% is 10,000: capped) and two of 50,000 (2,500 each: capped too),
    # then one of 20,000 cells whose 5% stays whole and as drawn without a cap
    attribute = np.repeat([0, 1, 2, 3], [200_000, 50_000, 50_000, 20_000])
    large = heldout_cells(np.ones(len(attribute), bool), attribute, share=0.05, num_targets=4, seed=0)
    counts = np.bincount(attribute[large])
    assert list(counts[:3]) == [MAX_PER_ATTRIBUTE] * 3 and abs(counts[3] - 1_000) < 100
    drawn = np.random.default_rng(0).random(len(attribute)) < 0.05
    assert not (large & ~drawn).any() and (large[attribute == 3] == drawn[attribute == 3]).all()
    partial = np.arange(1_000) % 2 == 0
    assert not heldout_cells(partial, np.zeros(1_000, int), share=0.05, num_targets=1, seed=0)[~partial].any()


def test_small_catalogs_get_more_epochs_and_the_largest_the_minimum():
    assert epoch_budget(44_441, 512) == MIN_EPOCHS
    assert epoch_budget(1_500, 187) >= 10
    assert epoch_budget(1_500, 187) >= epoch_budget(10_000, 512) >= epoch_budget(44_441, 512)
    assert epoch_budget(1_000_000, 512) == MIN_EPOCHS                  # epochs of a draw: see EPOCH_PRODUCTS


def test_mixture_recovers_overconfidence_and_ignores_noise():
    rng = np.random.default_rng(0)
    value_attribute = np.array([0, 0, 0, 1, 1])
    true = rng.normal(size=(4000, 5)).astype(np.float32)
    attr = rng.integers(0, 2, 4000)
    truth = np.empty(4000, dtype=np.int64)
    for i, a in enumerate(attr):
        cols = np.flatnonzero(value_attribute == a)
        p = np.exp(true[i, cols]) / np.exp(true[i, cols]).sum()
        truth[i] = cols[rng.choice(len(cols), p=p)]
    noise = rng.normal(size=true.shape).astype(np.float32)
    weights = fit_mixture(*_blocked([true * 3, noise], truth, value_attribute), 2).weights
    assert weights[:, 0] == pytest.approx([1 / 3, 1 / 3], rel=0.15)
    assert np.abs(weights[:, 1]).max() < 0.1


def test_mixture_keeps_an_attribute_with_few_cells_near_the_shared_weights():
    rng = np.random.default_rng(1)
    value_attribute = np.array([0, 0, 0, 1, 1, 1])
    signal, noise = (rng.normal(size=(2020, 6)).astype(np.float32) for _ in range(2))
    attr = np.r_[np.zeros(2000, np.int64), np.ones(20, np.int64)]
    # attribute 0 (2,000 cells) follows the signal; attribute 1 (20 cells) happens to follow the noise
    truth = np.array([np.flatnonzero(value_attribute == a)[(signal if a == 0 else noise)[i, 3 * a:3 * a + 3].argmax()]
                      for i, a in enumerate(attr)])
    blocked = _blocked([signal, noise], truth, value_attribute)
    # one fold: no choice by cross-validation, the prior alone
    pulled = fit_mixture(*blocked, 2, prior_strength=5.0, folds=1).weights
    alone = fit_mixture(*blocked, 2, prior_strength=0.0, folds=1).weights
    assert pulled[0, 0] > 3 * pulled[0, 1]
    assert np.abs(pulled[1] - pulled[0]).sum() < 0.5 * np.abs(alone[1] - alone[0]).sum()
