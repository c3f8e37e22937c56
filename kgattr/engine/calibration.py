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

from ..extract.platt import IDENTITY, apply, logit, platt

SOURCES = ("mix", "copy")
# a map weighs against the identity like this many held-out cells: with few cells a source keeps nearly its own
# confidences, with thousands the map is the data's
PRIOR_CELLS = 30.0


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


def held_out_calibration(attribute: np.ndarray, confidence: np.ndarray, correct: np.ndarray,
                         copied: np.ndarray) -> dict:
    """A model's ``calibration_`` from its held-out cells' out-of-fold outcomes (see :func:`fit_maps`): each cell's
    attribute, calibrated confidence and outcome (what per-attribute precision thresholds are chosen on), and the
    maps (what every later confidence goes through)."""
    maps = fit_maps(confidence, correct, copied)
    return {"attribute": attribute, "confidence": calibrate(maps, confidence, copied).astype(np.float32),
            "correct": correct.astype(np.uint8), "map": maps}


def calibrate(maps: np.ndarray, confidence, copied):
    """``confidence`` (array or float) through the map of its source (``copied``, alike in shape)."""
    return np.where(copied, apply(maps[1], confidence), apply(maps[0], confidence))


def share_rest(alternatives: list[dict], mass: float, new_mass: float) -> list[dict]:
    """``alternatives`` [{value, confidence}] that shared ``mass`` (what the chosen value left), rescaled to share
    ``new_mass`` (what it leaves once calibrated)."""
    scale = new_mass / mass if mass > 0 else 0.0
    return [{**a, "confidence": round(a["confidence"] * scale, 4)} for a in alternatives]
