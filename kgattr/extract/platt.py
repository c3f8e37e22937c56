"""Platt scaling: a confidence mapped by a one-feature logistic regression on its logit, pulled toward the
identity. The copy rules calibrate their precisions with it, and every final confidence goes through one such
map per source (:mod:`kgattr.engine.calibration`)."""
from __future__ import annotations

import numpy as np

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
