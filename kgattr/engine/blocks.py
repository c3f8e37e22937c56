"""Held-out cells grouped by attribute, so that each cell is scored over its own attribute's values only.

The mix (:mod:`kgattr.engine.mixture`) reads, of a held-out cell's scores, only the values of the cell's attribute.
Kept dense, every member's scores would be (cells, num_values): on a catalog of tens of thousands of values, some
gigabytes per member. Grouped, a member's scores are one (cells of a, values of a) array per attribute a.
"""
from __future__ import annotations

import numpy as np


class Blocks:
    """Held-out cells (c,) grouped by attribute.

    Attributes:
        attributes: (A,) the attributes of the cells, ascending.
        cells: A arrays (m,), the positions of each attribute's cells among the c, ascending.
        columns: A slices [start, stop), each attribute's value indices (value nodes are numbered attribute by
            attribute).
    """

    def __init__(self, truth: np.ndarray, value_attribute: np.ndarray):
        """``truth`` (c,): the cells' true value indices; ``value_attribute`` (num_values,), ascending."""
        attribute = value_attribute[truth]
        self.attributes = np.unique(attribute)
        starts = np.searchsorted(value_attribute, self.attributes, "left")
        stops = np.searchsorted(value_attribute, self.attributes, "right")
        self.cells = [np.flatnonzero(attribute == a) for a in self.attributes]
        self.columns = [slice(int(s), int(e)) for s, e in zip(starts, stops)]
        # (c,) each cell's block, and its place there
        self.block = np.searchsorted(self.attributes, attribute)
        self.slot = np.zeros(len(truth), np.int64)
        for cells in self.cells:
            self.slot[cells] = np.arange(len(cells))

    def __len__(self) -> int:
        return len(self.attributes)

    def __iter__(self):
        """(attribute, cells (m,), columns) of each block."""
        return zip(self.attributes.tolist(), self.cells, self.columns)

    def map(self, score) -> list:
        """``score(cells, columns)`` of every block: e.g. a member's scores, (m, values of the attribute) each."""
        return [score(cells, columns) for cells, columns in zip(self.cells, self.columns)]

    def empty(self) -> list[np.ndarray]:
        """A member's float32 scores to fill (see :meth:`put`), one (m, values of the attribute) array per block."""
        return self.map(lambda cells, columns: np.empty((len(cells), columns.stop - columns.start), np.float32))

    def put(self, scores: list[np.ndarray], cells: np.ndarray, dense: np.ndarray) -> None:
        """Write into ``scores`` (from :meth:`empty`) the rows ``dense`` (k, num_values) of the ``cells`` (k,), each
        row's own attribute's columns only."""
        block = self.block[cells]
        for b in np.unique(block):
            take = np.flatnonzero(block == b)
            scores[b][self.slot[cells[take]]] = dense[take, self.columns[b]]


def rank_within(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(n,) each element's place among the elements of its group (``groups`` (n,)), by ascending ``keys`` (n,):
    0 for the smallest key of each group. Keeping the places below k keeps each group's k first, as drawn when
    ``keys`` are random draws."""
    order = np.lexsort((keys, groups))                                 # by group, then by key
    start = np.searchsorted(groups[order], groups[order])              # each group's first place
    rank = np.empty(len(groups), np.int64)
    rank[order] = np.arange(len(order)) - start
    return rank
