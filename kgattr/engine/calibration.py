"""The last step of every confidence: a map per source from its raw confidence to the chance it is right.

A cell's value comes from one of two sources: the mix of the members' scores (its softmax over the allowed
values) or a copy rule reading the product's text. Both are fitted on held-out data, but the mix's weights are
fitted on the very cells they are judged on, and a cell takes the more confident source, which favours the
sources' optimistic errors. So the final confidences are mapped once more, per source, by Platt scaling
(a one-feature logistic regression on the logit of the raw confidence), fitted on *out-of-fold* outcomes of the
whole decision: the mix as fitted without the cell's fold, the copy rules as learned without it, the gate that
picks one of them. Each map is pulled toward the identity by a prior worth :data:`PRIOR_CELLS` cells, so a
source seen on few held-out cells keeps nearly its own confidences.
"""
from __future__ import annotations

import numpy as np

SOURCES = ("mix", "copy")
# a map weighs against the identity like this many held-out cells: with few cells a source keeps nearly its own
# confidences, with thousands the map is the data's
PRIOR_CELLS = 30.0
IDENTITY = (1.0, 0.0)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def platt(x: np.ndarray, y: np.ndarray, prior_cells: float = 1.0) -> tuple[float, float]:
    """(slope a, intercept b) of the logistic regression P(y) = sigmoid(a * x + b), minimising the NLL of
    ``y`` (bool) plus ``prior_cells`` * ((a - 1)^2 + b^2): pulled toward the identity, which also keeps the fit
    finite when ``y`` holds one class or ``x`` separates it."""
    from scipy.optimize import minimize

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def loss(p):
        z = p[0] * x + p[1]
        g = 1.0 / (1.0 + np.exp(-z)) - y                                # d NLL / d z
        value = np.sum(np.logaddexp(0.0, z) - y * z) + prior_cells * ((p[0] - 1) ** 2 + p[1] ** 2)
        return value, np.array([g @ x + 2 * prior_cells * (p[0] - 1), g.sum() + 2 * prior_cells * p[1]])

    a, b = minimize(loss, np.array(IDENTITY), jac=True, method="L-BFGS-B").x
    return float(a), float(b)


def apply(slope_intercept, p):
    """sigmoid(slope * logit(p) + intercept): ``p`` mapped (array or float)."""
    a, b = slope_intercept
    return 1.0 / (1.0 + np.exp(-(a * logit(np.asarray(p, dtype=np.float64)) + b)))


def fit_maps(confidence: np.ndarray, correct: np.ndarray, copied: np.ndarray) -> np.ndarray:
    """(len(SOURCES), 2) float32 Platt maps (slope, intercept), from out-of-fold outcomes.

    Args:
        confidence, correct: (c,) the raw confidence and outcome of the value each held-out cell received.
        copied: (c,) bool, the value came from a copy rule (else from the mix).
    """
    maps = np.array([IDENTITY] * len(SOURCES), dtype=np.float32)
    for s, take in enumerate((~copied, copied)):
        if take.any():
            maps[s] = platt(logit(confidence[take]), correct[take], PRIOR_CELLS)
    return maps


def calibrate(maps: np.ndarray, confidence, copied):
    """``confidence`` (array or float) through the map of its source (``copied``, alike in shape)."""
    return np.where(copied, apply(maps[1], confidence), apply(maps[0], confidence))


def share_rest(alternatives: list[dict], mass: float, new_mass: float) -> list[dict]:
    """``alternatives`` [{value, confidence}] that shared ``mass`` (what the chosen value left), rescaled to share
    ``new_mass`` (what it leaves once calibrated)."""
    scale = new_mass / mass if mass > 0 else 0.0
    return [{**a, "confidence": round(a["confidence"] * scale, 4)} for a in alternatives]
