"""Fitting the scoring members (GNN, linear text scorer) with held-out scores for the mix.

A large catalog keeps a random share of its known cells out of training and mixes on those. A small one
has too few such cells per attribute (a few, where a large one has hundreds), so its products are dealt
into folds: the members are fitted once per fold without that fold's cells as targets, every known cell is
scored once while held out, and the final members are fitted on all cells. The GNN's training length
follows the same held-out cells: epochs until their loss stops falling, up to a budget of updates.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

log = logging.getLogger(__name__)

# a held-out share leaving fewer cells than this per modelled attribute (on average) is replaced by folds:
# the real 44k-product catalog holds ~176 per attribute at a 5% share, a 1,500-product draw of it ~10
CELLS_PER_ATTRIBUTE = 50
FOLDS = 3
# optimiser updates the GNN's epochs aim at, and epochs at least: the 44k-product catalog (87 batches an epoch)
# keeps its 3 epochs; a catalog of a few thousand products (~8 batches an epoch) gets up to 20
UPDATES = 160
MIN_EPOCHS = 3
MAX_EPOCHS = 30
PATIENCE = 3


class Heldout(NamedTuple):
    """Scores of held-out cells: product rows (c,), true value indices (c,), and the members' (c, num_values)
    scores [GNN, linear, similar-product vote]."""
    rows: np.ndarray
    truth: np.ndarray
    scores: list


def calibration_folds(rows: np.ndarray, target: np.ndarray, num_products: int, *, share: float, num_targets: int,
                      seed: int) -> list[np.ndarray]:
    """(E,) bool masks over the known cells (product ``rows`` (E,)), one per fit: the cells held out of it.

    One random ``share`` of the ``target`` cells when that leaves :data:`CELLS_PER_ATTRIBUTE` per each of the
    ``num_targets`` attributes; else :data:`FOLDS` folds of products, which together hold every target cell.
    """
    rng = np.random.default_rng(seed)
    held = target & (rng.random(len(rows)) < share)
    if held.sum() >= CELLS_PER_ATTRIBUTE * num_targets or num_products < FOLDS:
        return [held]
    fold = rng.permutation(num_products) % FOLDS
    return [target & (fold[rows] == k) for k in range(FOLDS)]


def epoch_budget(num_products: int, batch_size: int) -> int:
    """Most epochs worth training: :data:`UPDATES` over the batches of an epoch, within [MIN_EPOCHS, MAX_EPOCHS]."""
    batches = max(1, -(-num_products // batch_size))
    return int(np.clip(-(-UPDATES // batches), MIN_EPOCHS, MAX_EPOCHS))


def cross_fit(c, inputs, near, target: np.ndarray, folds: list[np.ndarray], batch_size: int):
    """Fit the final GNN and linear scorer of completer ``c`` and score held-out cells for the mix.

    Args:
        inputs, near: :class:`~kgattr.train.Inputs` and :class:`~kgattr.train.Neighbours` of the catalog.
        target: (E,) bool, the known cells (COO order of ``inputs.values``) of modelled attributes.
        folds: from :func:`calibration_folds`.

    Returns:
        (model, linear, training losses of the model, [warm, cold] :class:`Heldout`), warm: products seeing
        their other values, cold: products seeing none (see :func:`~kgattr.train.calibration_logits`).
    """
    from .train import calibration_logits

    epochs, fitted = c.epochs, []
    if epochs is None:
        epochs = epoch_budget(inputs.text.shape[0], batch_size)
        if epochs > MIN_EPOCHS:            # the first fit keeps the weights of its lowest held-out loss
            model, linear, history, heldout = _fit(c, inputs, near, target, folds[0], epochs, batch_size, PATIENCE)
            fitted.append((model, linear, history))
            if heldout:
                epochs = int(np.nanargmin(heldout)) + 1
                log.info("epochs: held-out loss lowest after %d (%s)", epochs, [round(x, 4) for x in heldout])
    fitted += [_fit(c, inputs, near, target, f, epochs, batch_size)[:3] for f in folds[len(fitted):]]
    parts = [[], []]
    for (model, linear, _), held in zip(fitted, folds):
        for part, (rows, truth, logits, vote) in zip(parts, calibration_logits(
                model, inputs, near, (c.graph_.cooccurs, c.graph_.pmi), held, mask_rate=c.mask_rate,
                sharpness=c.sharpness, seed=c.seed)):
            part.append(Heldout(rows, truth, [logits, linear.decision(inputs.lexical[rows]), vote]))
    if len(folds) > 1:
        fitted = [_fit(c, inputs, near, target, np.zeros_like(target), epochs, batch_size)[:3]]
    model, linear, history = fitted[0]
    return model, linear, history, [Heldout(np.concatenate([h.rows for h in part]),
                                            np.concatenate([h.truth for h in part]),
                                            [np.concatenate(s) for s in zip(*(h.scores for h in part))])
                                    for part in parts]


def _fit(c, inputs, near, target, held, epochs, batch_size, patience=None):
    """(GNN, linear scorer, training losses, held-out losses) fitted on the ``target`` cells outside ``held``."""
    from .linear import LinearTextScorer
    from .model import FusionGNN
    from .train import fit_model, num_features

    import torch

    graph = c.graph_
    torch.manual_seed(c.seed)
    model = FusionGNN(text_dim=inputs.text.shape[1], lexical_size=c.lexical_.size,
                      num_categories=len(graph.categories), num_values=len(graph.values),
                      num_attributes=len(c.attributes_), value_attribute=c.value_attribute_.tolist(),
                      hidden_channels=c.hidden_channels, num_features=num_features(near))
    history, heldout = fit_model(model, inputs, near, (graph.cooccurs, graph.pmi), target, held, epochs=epochs,
                                 batch_size=batch_size, lr=c.lr, mask_rate=c.mask_rate, sharpness=c.sharpness,
                                 seed=c.seed, lexical_lr=c.lexical_lr, patience=patience, progress=c.progress)
    coo = inputs.values.tocoo()
    trained = target & ~held
    # in a thread beside the GNN, liblinear (which releases the GIL) slowed torch's two threads more than it saved
    linear = LinearTextScorer(C=c.svm_c).fit(inputs.lexical, coo.row[trained], coo.col[trained],
                                             c.value_attribute_, c.lexical_.title_size_)
    return model, linear, history, heldout
