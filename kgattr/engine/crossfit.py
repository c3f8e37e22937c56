"""Fitting the scoring members (GNN, linear text scorer) and scoring held-out cells for the mix.

A share of the known cells of the modelled attributes is kept out of training; the members' scores on those
cells fit the mix and calibrate confidences (:mod:`kgattr.engine.mixture`). The share scales with the data: a large
catalog keeps a small share (5% of Myntra's 44k products is ~176 cells per attribute), a small one a larger
share, so that each attribute has enough cells to choose its mix on. The GNN's training length follows the
same held-out cells: epochs until their loss stops falling, within a budget of optimiser updates.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from ..io import schedule
from .blocks import Blocks, rank_within
from .memory import release

log = logging.getLogger(__name__)

# held-out cells wanted per modelled attribute on average, the largest share of the known cells they may take, and
# the most any one attribute keeps: a few thousand cells pin its mix weights and calibration map down (a 0.9
# accuracy is known to +-0.007 from 2,000), and beyond that more would only cost fitting time, which grows with them
# (at 200,000 products 5% of the known cells is ~120,000, and the mix's fit on them took most of training), and
# training data; the rest go back to the scorers
CELLS_PER_ATTRIBUTE = 50
MAX_SHARE = 0.2
MAX_PER_ATTRIBUTE = 2_000
# optimiser updates the GNN's epochs aim at, and epochs at least: the 44k-product catalog (87 batches an epoch)
# keeps its 3 epochs, a catalog of a few thousand products (~8 batches an epoch) gets up to MAX_EPOCHS
UPDATES = 96
MIN_EPOCHS = 3
MAX_EPOCHS = 12
PATIENCE = 2
# products an epoch trains on, at most: a larger catalog's epoch is a random draw of this many (its states and
# neighbours still those of the whole catalog), so that training's updates stop growing with the catalog: a million
# products would take 5,900 updates in 3 whole epochs, where 200,000 drawn Myntra products' loss levels off within
# 3 draws of 128 (0.137, 0.059, 0.053). Every benchmark catalog (44,441 products at most) trains on whole epochs
EPOCH_PRODUCTS = 65_536


class Heldout(NamedTuple):
    """Scores of held-out cells: product rows (c,), true value indices (c,), the cells grouped by attribute
    (:class:`~kgattr.engine.blocks.Blocks`), and the members' scores [GNN, linear, similar-product vote], each one
    (cells of a, values of a) array per attribute a of ``blocks``."""
    rows: np.ndarray
    truth: np.ndarray
    blocks: Blocks
    scores: list


def heldout_cells(target: np.ndarray, attribute: np.ndarray, *, share: float, num_targets: int,
                  seed: int) -> np.ndarray:
    """(E,) bool over the known cells: those held out of training, a random part of the ``target`` cells.

    The part is ``share``, raised up to :data:`MAX_SHARE` where that leaves fewer than
    :data:`CELLS_PER_ATTRIBUTE` per each of the ``num_targets`` attributes; an attribute (``attribute``: (E,),
    each cell's) keeps at most :data:`MAX_PER_ATTRIBUTE` of them, those drawn first."""
    wanted = CELLS_PER_ATTRIBUTE * num_targets / max(int(target.sum()), 1)
    share = float(np.clip(wanted, share, max(share, MAX_SHARE)))
    draw = np.random.default_rng(seed).random(len(target))
    held = target & (draw < share)
    cells = np.flatnonzero(held)
    held[cells[rank_within(attribute[cells], draw[cells]) >= MAX_PER_ATTRIBUTE]] = False
    return held


def epoch_budget(num_products: int, batch_size: int) -> int:
    """Most epochs worth training the GNN: :data:`UPDATES` over the batches of an epoch (of at most
    :data:`EPOCH_PRODUCTS` products), within [MIN_EPOCHS, MAX_EPOCHS] (:func:`kgattr.io.schedule.epoch_budget`)."""
    return schedule.epoch_budget(min(num_products, EPOCH_PRODUCTS), batch_size, updates=UPDATES,
                                 min_epochs=MIN_EPOCHS, max_epochs=MAX_EPOCHS)


def cross_fit(c, inputs, near, target: np.ndarray, held: np.ndarray, batch_size: int, *, map=map):
    """Fit the GNN and linear scorer of completer ``c`` on the ``target`` cells outside ``held`` and score those;
    then fit the linear scorer again on all ``target`` cells, the one returned.

    Args:
        inputs, near: :class:`~kgattr.engine.train.Inputs` and :class:`~kgattr.engine.train.Neighbours` of the catalog.
        target: (E,) bool, the known cells (COO order of ``inputs.values``) of modelled attributes.
        held: (E,) bool, from :func:`heldout_cells`.
        map: runs the linear scorer's fits (see :meth:`~kgattr.engine.linear.LinearTextScorer.fit`).

    Returns:
        (model, linear scorer of all target cells, training losses of the model, [warm, cold] :class:`Heldout`),
        warm: products seeing their other values, cold: products seeing none (see
        :func:`~kgattr.engine.train.calibration_batches`).
    """
    from .linear import LinearTextScorer
    from .model import FusionGNN
    from .train import calibration_batches, fit_model, known_edges, num_features, seed_torch

    epochs = c.epochs if c.epochs is not None else epoch_budget(inputs.text.shape[0], batch_size)
    patience = PATIENCE if c.epochs is None and epochs > MIN_EPOCHS else None
    graph = c.graph_
    edges = (graph.cooccurs, graph.pmi)
    seed_torch(c.seed)
    model = FusionGNN(text_dim=inputs.text.shape[1], lexical_size=c.lexical_.size,
                      num_categories=len(graph.categories), num_values=len(graph.values),
                      num_attributes=len(c.attributes_), value_attribute=c.value_attribute_.tolist(),
                      hidden_channels=c.hidden_channels, num_features=num_features(near))
    history, heldout = fit_model(model, inputs, near, edges, target, held, epochs=epochs, batch_size=batch_size,
                                 lr=c.lr, mask_rate=c.mask_rate, sharpness=c.sharpness, seed=c.seed,
                                 lexical_lr=c.lexical_lr, patience=patience, epoch_products=EPOCH_PRODUCTS,
                                 progress=c.progress)
    if heldout:
        log.info("epochs: held-out losses %s", [round(x, 4) for x in heldout])
    known = known_edges(inputs.values)                     # (2, E) rows, values
    trained = target & ~held

    def fit_linear(cells: np.ndarray, keep=None) -> LinearTextScorer:  # on the known cells ``cells`` (E,) bool
        return LinearTextScorer(C=c.svm_c).fit(inputs.lexical, known[0][cells], known[1][cells], c.value_attribute_,
                                               c.lexical_.title_size_, map=map, keep=keep)

    # in a thread beside the GNN, liblinear (which releases the GIL) slowed torch's two threads more than it saved
    linear = fit_linear(trained)
    release()
    parts = []
    for rows, truth, batches in calibration_batches(model, inputs, near, edges, held, mask_rate=c.mask_rate,
                                                    sharpness=c.sharpness, seed=c.seed):
        blocks = Blocks(truth, c.value_attribute_)
        logits, votes = blocks.empty(), blocks.empty()
        for cells, z, vote in batches:              # each batch's (k, num_values) rows, cut to their attributes
            blocks.put(logits, cells, z.numpy())
            blocks.put(votes, cells, vote)
        svm = blocks.map(lambda cells, columns: linear.decision(inputs.lexical[rows[cells]], columns))
        parts.append(Heldout(rows, truth, blocks, [logits, svm, votes]))
    # the held-out cells have given their scores; the scorer that answers is fitted on them too, as a stack's
    # members are refitted on all data (alone on Myntra's hidden cells: 0.9324 -> 0.9333 with its 5% back; kgattr
    # 0.9376 -> 0.9381, JLCPCB's 20,000 0.7600 -> 0.7619). The GNN is not refitted: that is a second training.
    # An attribute the first fit drew capped rows for keeps its weights: it would learn from as many again.
    linear = fit_linear(target, keep=linear)
    release()
    return model, linear, history, parts
