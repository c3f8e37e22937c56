import numpy as np

from hypothesis import given, settings
from hypothesis import strategies as st

from kgattr.engine.calibration import PRIOR_CELLS, calibrate, fit_maps, python_round
from kgattr.extract.platt import platt


def _overconfident(rng, n):
    """Confidences that claim 0.9 where the value is right 60% of the time."""
    return np.full(n, 0.9), rng.random(n) < 0.6


def test_an_overconfident_source_is_brought_to_its_accuracy_and_the_other_kept():
    rng = np.random.default_rng(0)
    conf, right = _overconfident(rng, 4000)
    calibrated_conf = rng.uniform(0.5, 1.0, 4000)
    copied = np.r_[np.zeros(4000, bool), np.ones(4000, bool)]
    maps = fit_maps(np.r_[conf, calibrated_conf], np.r_[right, rng.random(4000) < calibrated_conf], copied)
    assert abs(float(calibrate(maps, 0.9, False)) - 0.6) < 0.03
    assert abs(float(calibrate(maps, 0.8, True)) - 0.8) < 0.03


def test_a_source_too_sure_of_low_confidences_and_too_shy_of_middle_ones_is_followed():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.01, 0.99, 20000)
    truth = lambda p: 1 / (1 + np.exp(-(2 * np.log(p) + 0.5 * np.log1p(-p) + 2.0)))    # a beta map (2, -0.5, 2)
    maps = fit_maps(conf, rng.random(len(conf)) < truth(conf), np.zeros(len(conf), bool))
    for p in (0.05, 0.3, 0.6, 0.9):
        assert abs(float(calibrate(maps, p, False)) - truth(p)) < 0.03
    assert float(calibrate(maps, 0.05, False)) < 0.05 < 0.3 < float(calibrate(maps, 0.3, False))


def test_few_cells_barely_move_a_source():
    rng = np.random.default_rng(0)
    conf, right = _overconfident(rng, 5)
    a, b = platt(np.log(conf / (1 - conf)), right, PRIOR_CELLS)
    assert abs(a - 1) < 0.1 and abs(b) < 0.2
    assert platt(np.zeros(3), np.ones(3, bool), PRIOR_CELLS)[1] < 0.2         # one class only: still finite, near 0


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=50), st.integers(0, 6))
def test_python_round_rounds_as_python(xs, digits):
    got = python_round(np.array(xs, dtype=np.float64), digits).tolist()
    assert [repr(x) for x in got] == [repr(round(x, digits)) for x in xs]


def test_python_round_where_numpy_does_not():
    # halves and their neighbours, where scaling in floating point lands on the wrong side
    xs = [(k + 0.5) / 1e4 for k in range(20000)]
    xs += [float(np.nextafter(x, 1.0)) for x in xs] + [float(np.nextafter(x, 0.0)) for x in xs] + [2.675, 1e300]
    got = python_round(np.array(xs), 4).tolist()
    assert got == [round(x, 4) for x in xs] != np.round(np.array(xs), 4).tolist()
