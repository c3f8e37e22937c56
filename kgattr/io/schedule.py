"""Training length that scales with the data, shared by the GNN and the token tagger.

A budget of optimiser updates sets the most epochs (a small catalog gets more passes than a large one), and
held-out loss after each epoch ends training once it no longer falls, keeping the weights of its lowest.
"""
from __future__ import annotations

import numpy as np


def epoch_budget(num_items: int, batch_size: int, *, updates: int, min_epochs: int, max_epochs: int) -> int:
    """Most epochs worth training: ``updates`` over the batches of an epoch, within [min_epochs, max_epochs]."""
    batches = max(1, -(-num_items // batch_size))
    return int(np.clip(-(-updates // batches), min_epochs, max_epochs))


class Patience:
    """Held-out losses epoch by epoch; :meth:`update` says when they have not fallen for ``patience`` epochs.

    Attributes:
        losses: the held-out loss of each epoch so far.
        best: the state taken at the lowest loss (what ``state()`` returned then).
    """

    def __init__(self, patience: int):
        self.patience = patience
        self.losses: list[float] = []
        self.best = None

    def update(self, loss: float, state) -> bool:
        """Record ``loss``; call ``state()`` (a copy of the weights) when it is the lowest yet. True: end now."""
        self.losses.append(loss)
        if loss <= min(self.losses):
            self.best = state()
            return False
        return len(self.losses) - 1 - int(np.argmin(self.losses)) >= self.patience
