import numpy as np

from kgattr.crossfit import CELLS_PER_ATTRIBUTE, FOLDS, MIN_EPOCHS, calibration_folds, epoch_budget
from kgattr.mixture import fit_mixture


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
    weights = fit_mixture([a, b, noise], truth, np.ones_like(a, dtype=bool), value_attribute, 2)
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
    weights = fit_mixture(members, truth, np.ones_like(signal, dtype=bool), value_attribute, 1, groups=np.arange(n) // 2)
    alone = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    assert _accuracy(weights, members, truth, value_attribute) >= _accuracy(alone, members, truth, value_attribute) - 0.01


def test_calibration_cells_come_from_folds_of_products_when_a_share_leaves_too_few():
    rng = np.random.default_rng(0)
    products, per_product = 400, 5
    rows = np.repeat(np.arange(products), per_product)
    target = rng.random(len(rows)) < 0.9
    folds = calibration_folds(rows, target, products, share=0.05, num_targets=4, seed=0)
    assert len(folds) == FOLDS
    assert np.array_equal(np.sum(folds, 0), target.astype(int))            # every target cell held out once
    for held in folds:                                                    # a product's cells stay together
        assert len(np.intersect1d(rows[held], rows[target & ~held])) == 0
    many = np.repeat(np.arange(100_000), 2)
    one = calibration_folds(many, np.ones(len(many), bool), 100_000, share=0.05, num_targets=2, seed=0)
    assert len(one) == 1 and one[0].sum() >= 2 * CELLS_PER_ATTRIBUTE
    assert abs(one[0].mean() - 0.05) < 0.005


def test_small_catalogs_get_more_epochs_and_the_largest_the_minimum():
    assert epoch_budget(44_441, 512) == MIN_EPOCHS
    assert epoch_budget(1_500, 187) >= 15
    assert epoch_budget(1_500, 187) >= epoch_budget(10_000, 512) >= epoch_budget(44_441, 512)
