"""Platt scaling: a confidence mapped by a one-feature logistic regression on its logit, pulled toward the
identity. The copy rules calibrate their precisions with it; every final confidence goes through a map of the
same kind with two features, beta calibration (:mod:`kgattr.engine.calibration`)."""
from __future__ import annotations

import numpy as np

IDENTITY = (1.0, 0.0)
CLIP = 1e-4                                    # confidences are read within [CLIP, 1 - CLIP]


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, CLIP, 1 - CLIP)
    return np.log(p / (1 - p))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def fit_logistic(x: np.ndarray, y: np.ndarray, prior_cells: float, start) -> np.ndarray:
    """Weights w (k,) of the logistic regression P(y) = sigmoid(x @ w), ``x`` (n, k), minimising the NLL of ``y``
    (bool) plus ``prior_cells`` * |w - start|^2: pulled toward ``start``, which also keeps the fit finite when
    ``y`` holds one class or ``x`` separates it."""
    from scipy.optimize import minimize

    x, y, start = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(start, np.float64)

    def loss(w):
        z = x @ w
        g = sigmoid(z) - y                                              # d NLL / d z
        value = np.sum(np.logaddexp(0.0, z) - y * z) + prior_cells * np.sum((w - start) ** 2)
        return value, g @ x + 2 * prior_cells * (w - start)

    return minimize(loss, start, jac=True, method="L-BFGS-B").x


def platt(x: np.ndarray, y: np.ndarray, prior_cells: float = 1.0) -> tuple[float, float]:
    """(slope a, intercept b) of P(y) = sigmoid(a * x + b), pulled toward the identity (see :func:`fit_logistic`)."""
    x = np.asarray(x, np.float64)
    a, b = fit_logistic(np.stack([x, np.ones_like(x)], 1), y, prior_cells, IDENTITY)
    return float(a), float(b)


def apply(slope_intercept, p):
    """sigmoid(slope * logit(p) + intercept): ``p`` mapped (array or float)."""
    a, b = slope_intercept
    return sigmoid(a * logit(np.asarray(p, dtype=np.float64)) + b)
