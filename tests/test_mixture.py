import numpy as np

from kgattr.engine.crossfit import CELLS_PER_ATTRIBUTE, MAX_SHARE, MIN_EPOCHS, epoch_budget, heldout_cells
from kgattr.engine.mixture import fit_mixture


def _cells(rng, value_attribute, attr, follow):
    """Truth of cells of attributes ``attr``: the argmax of ``follow`` (c, num_values) within the attribute."""
    return np.array([np.flatnonzero(value_attribute == a)[follow[i, value_attribute == a].argmax()]
                     for i, a in enumerate(attr)])


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
    weights = fit_mixture([a, b, noise], truth, np.ones_like(a, dtype=bool), value_attribute, 2).weights
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
    weights = fit_mixture(members, truth, np.ones_like(signal, dtype=bool), value_attribute, 1, groups=np.arange(n) // 2).weights
    alone = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    assert _accuracy(weights, members, truth, value_attribute) >= _accuracy(alone, members, truth, value_attribute) - 0.01


def test_the_held_out_share_grows_on_small_catalogs_and_stays_on_large_ones():
    small = np.ones(4_000, bool)                # 4 attributes x 1,000 cells: 5% would leave 50 each
    held = heldout_cells(small, share=0.05, num_targets=8, seed=0)
    assert abs(held.mean() - CELLS_PER_ATTRIBUTE * 8 / 4_000) < 0.02
    tiny = heldout_cells(np.ones(200, bool), share=0.05, num_targets=8, seed=0)
    assert tiny.mean() <= MAX_SHARE + 0.05
    large = heldout_cells(np.ones(200_000, bool), share=0.05, num_targets=2, seed=0)
    assert abs(large.mean() - 0.05) < 0.005
    partial = np.arange(1_000) % 2 == 0
    assert not heldout_cells(partial, share=0.05, num_targets=1, seed=0)[~partial].any()


def test_small_catalogs_get_more_epochs_and_the_largest_the_minimum():
    assert epoch_budget(44_441, 512) == MIN_EPOCHS
    assert epoch_budget(1_500, 187) >= 10
    assert epoch_budget(1_500, 187) >= epoch_budget(10_000, 512) >= epoch_budget(44_441, 512)
