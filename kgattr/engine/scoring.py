"""Scoring the gaps of a catalog: the top candidates of every missing value, with mixed, calibrated logits, and
the copy the product's own text gives each gap.

Products unchanged since training keep the cells scored (and the copies read) then; new or changed ones go through
the network and their text is read again.
The functions take a fitted :class:`~kgattr.completer.AttributeCompleter` ``c``, like those of
:mod:`kgattr.engine.modeldir`.
"""
from __future__ import annotations

from array import array
from sys import intern

import numpy as np

from ..exceptions import KgattrError
from ..extract.extraction import FIELDS        # a copy's field, as the cells' ``copy_field`` numbers it
from ..io.catalog import Catalog, content_hashes
from .memory import release


def score_gaps(c, catalog, inputs, near, extracted=None, *, on_disk: bool = False) -> dict[str, np.ndarray]:
    """Top-k candidates of every gap, sorted by product then attribute: product row (M,), attribute (M,), values
    (M, k) int32, logits (M, k), and the columns of :func:`text_copies`.
    ``near``: :class:`~kgattr.engine.train.Neighbours` of the catalog's products in the pool.
    ``extracted``: (n, num_values) CSR of the extractor's confidences, when the model uses one.
    ``on_disk``: the numeric columns but product and attribute are written to temporary files as the batches are
    made and mapped from there (read as they are used), so that they take no memory beside the catalog's inputs
    (a million products' cells are 1.9 GB, 1.5 of them in those columns).

    The gaps are listed first, so every column is made once at its full size; a batch of products at a time, its
    text read at once, then fills its rows."""
    from .train import predict_logits, similar_vote

    k = c.top_k
    starts = np.searchsorted(c.value_attribute_, np.arange(len(c.attributes_) + 1))
    weight = c.mix_[:, c.value_attribute_]                            # (2, num_values, S): see fit
    known = np.diff(inputs.values.indptr)
    # each product's gaps in attribute order (c.gaps gives them so), products in order
    counts, listed = np.zeros(len(catalog), dtype=np.int64), array("q")
    for i, p in enumerate(catalog.products):
        gaps = c.gaps(p)
        counts[i] = len(gaps)
        listed.extend(gaps)
    first = np.r_[0, np.cumsum(counts)]                                   # (n + 1,) each product's first cell
    none = np.zeros(0, np.int64)
    product = np.repeat(np.arange(len(catalog), dtype=np.int64), counts)
    attribute = np.frombuffer(listed, dtype=np.int64) if len(listed) else none
    columns = _Columns(len(product), {"values": np.zeros((0, k), np.int32), "logits": np.zeros((0, k), np.float32),
                                      **text_copies(c, [], none, none)}, on_disk)
    for rows, logits in predict_logits(c.model_, inputs, near, c.pool_, (c.graph_.cooccurs, c.graph_.pmi),
                                       sharpness=c.sharpness, progress=c.progress):
        cold = (known[rows] == 0).astype(np.int64)                         # (len(rows),) the mix of each row
        scores = [logits, c.linear_.decision(inputs.lexical[rows]),
                  similar_vote(near.take(rows), c.pool_, c.sharpness)]
        if extracted is not None:
            scores.append(extracted[rows].toarray())
        # one member's (len(rows), num_values) weights at a time, never all S of them
        logits = sum(score * weight[cold, :, j] for j, score in enumerate(scores))
        batch = slice(first[rows[0]], first[rows[-1] + 1])                 # rows are consecutive
        gap_row, gap_attr = product[batch] - rows[0], attribute[batch]
        values = np.full((len(gap_row), k), -1, dtype=np.int32)
        top_logits = np.zeros((len(gap_row), k), dtype=np.float32)
        for a in np.unique(gap_attr):
            at = np.flatnonzero(gap_attr == a)
            seg = logits[gap_row[at], starts[a]:starts[a + 1]]              # (m, values of a)
            top = np.argsort(-seg, axis=1, kind="stable")[:, :k]
            values[at, :top.shape[1]] = starts[a] + top
            top_logits[at, :top.shape[1]] = np.take_along_axis(seg, top, 1)
        columns.append({"values": values, "logits": top_logits,
                        **text_copies(c, catalog.products, product[batch], gap_attr)})
    release()                                                             # the batches' temporaries
    return {"product": product, "attribute": attribute, **columns.close()}


class _Columns:
    """Columns of ``m`` rows filled a batch at a time, in order, shaped and typed as ``like`` (name -> array):
    arrays of their full size; or, ``on_disk``, each numeric one appended to an unlinked temporary file and mapped
    from it once complete (the mapping keeps the file until let go)."""

    def __init__(self, m: int, like: dict[str, np.ndarray], on_disk: bool):
        import tempfile

        self.m, self.like = m, like
        self.arrays = {name: np.empty((m,) + x.shape[1:], x.dtype) for name, x in like.items()
                       if not on_disk or x.dtype == object}
        self.files = {name: tempfile.TemporaryFile(prefix="kgattr-cells-") for name in like if name not in self.arrays}
        self.at = 0

    def append(self, batch: dict[str, np.ndarray]) -> None:
        n = len(next(iter(batch.values())))
        for name, column in batch.items():
            if name in self.files:
                self.files[name].write(np.ascontiguousarray(column, self.like[name].dtype).data)
            else:
                self.arrays[name][self.at:self.at + n] = column
        self.at += n

    def close(self) -> dict[str, np.ndarray]:
        for name, file in self.files.items():
            file.flush()
            x = self.like[name]
            self.arrays[name] = np.memmap(file, x.dtype, "r", shape=(self.m,) + x.shape[1:]) if self.m else \
                np.empty((0,) + x.shape[1:], x.dtype)
            file.close()
        return {name: self.arrays[name] for name in self.like}


def text_copies(c, products, rows: np.ndarray, attributes: np.ndarray) -> dict[str, np.ndarray]:
    """The copy the text of ``products[rows[m]]`` gives its attribute index ``attributes[m]`` (M,) through the
    model's copy rules: ``copy`` (M,) object, the value (None: the attribute takes no copies, or the text states
    none); ``copy_confidence`` (M,) float64, the rule's (the model's map not yet applied); ``copy_field`` (M,)
    int8, the :data:`FIELDS` index; ``copy_start``, ``copy_end`` (M,) int64, the span read."""
    copier = getattr(c, "copier_", None)
    wanted = set(getattr(c, "copies_for_", ())) if copier is not None else set()
    names = [c.attributes_[a] for a in attributes.tolist()]
    asked = {}                # product row -> its cells' attributes that take copies (a product without any: no reading)
    for r, a in zip(rows.tolist(), names):
        if a in wanted:
            asked.setdefault(r, set()).add(a)
    found = {r: copier.copies(products[r], these) for r, these in asked.items()}
    copies = [found[r].get(a) if a in wanted else None for r, a in zip(rows.tolist(), names)]
    column = lambda get, default, dtype: np.array([default if x is None else get(x) for x in copies], dtype=dtype)
    return {"copy": column(lambda x: intern(x.value), None, object),      # one string per value, not per gap
            "copy_confidence": column(lambda x: x.confidence, 0.0, np.float64),
            "copy_field": column(lambda x: FIELDS.index(x.field), -1, np.int8),
            "copy_start": column(lambda x: x.start, -1, np.int64), "copy_end": column(lambda x: x.end, -1, np.int64)}


def _known(c, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per product of ``catalog``: its pool row (-1: not in the model), whether it is unchanged since training
    (same text, category and values), whether its text is."""
    rows = c.graph_.skus.rows([p.sku for p in catalog])
    text_hash, record_hash = content_hashes(catalog)
    r = np.maximum(rows, 0)
    return rows, (rows >= 0) & (c.record_hash_[r] == record_hash), (rows >= 0) & (c.text_hash_[r] == text_hash)


def texts_to_encode(c, catalog: Catalog) -> list[str]:
    """The texts :func:`live_cells` encodes for ``catalog``, in its order: those of products new or changed
    whose text is not the one trained on."""
    _, unchanged, same_text = _known(c, catalog)
    return [p.text for p, keep in zip(catalog.products, unchanged | same_text) if not keep]


def live_cells(c, catalog: Catalog) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Cells of every gap of ``catalog`` and (n, k) neighbours of its products.

    A product unchanged since training (same text, category and values) keeps the cells scored then;
    the others (new or changed) are scored now, reusing stored text and neighbours when only values changed.
    """
    c.fresh_extracted = ({}, None)              # spans of the products scored now, by SKU, for evidence
    rows, unchanged, same_text = _known(c, catalog)
    index = np.full((len(catalog), c.neighbours), -1, dtype=np.int64)
    index[same_text] = c.knn_[0][rows[same_text]]
    kept = np.flatnonzero(unchanged)
    parts = [stored_cells(c, rows[kept], [catalog.products[i] for i in kept], kept)]
    fresh = np.flatnonzero(~unchanged)
    if len(fresh) and not c.read_text:
        raise KgattrError(f"{catalog.source}: a graph-only model (read_text=False) completes only the products "
                          f"it was fitted on, unchanged; {catalog.products[fresh[0]].sku!r} is new or changed")
    if len(fresh):
        from .train import Neighbours

        c.ensure_network()
        sub = Catalog([catalog.products[i] for i in fresh], catalog.source)
        same, known = same_text[fresh], rows[fresh]
        dim = c.model_.config["text_dim"]
        text = np.zeros((len(fresh), dim), dtype=np.float32)
        if same.any():
            text[same] = c.index_.reconstruct(known[same])[:, :dim]
        new = np.flatnonzero(~same)
        if len(new):
            text[new] = c.text_encoder().encode([sub.products[i].text for i in new], progress=c.progress)
        score = np.zeros((len(fresh), c.neighbours), dtype=np.float32)
        score[same] = c.knn_[1][known[same]]
        if len(new):
            hits = c.index_.search(c.vectors(text[new], [sub.products[i] for i in new]),
                                   c.neighbours, exclude=known[new])
            index[fresh[new]], score[new] = hits.index, hits.score
        c.fresh_extracted = ({p.sku: i for i, p in enumerate(sub)}, c.extracted_values(sub.products))
        extracted = c.fresh_extracted[1]
        near = Neighbours(index[fresh], score, c.listed_near(sub.products))
        cells = score_gaps(c, sub, c.model_inputs(sub, text), near,
                           extracted.matrix(len(sub), len(c.graph_.values)) if extracted else None)
        cells["product"] = fresh[cells["product"]]
        parts.append(cells)
    cells = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((cells["attribute"], cells["product"]))
    return {k: v[order] for k, v in cells.items()}, index


def stored_cells(c, rows: np.ndarray, products, local: np.ndarray) -> dict[str, np.ndarray]:
    """The cells scored at training time for pool ``rows``, as rows ``local`` of the caller's list, limited
    to the gaps the current rules leave (a rule edited since may have made an attribute inapplicable)."""
    # cells_ is sorted by product: each row's cells are one run, found by binary search (no pass over the pool,
    # which a catalog imputed chunk by chunk would pay once a chunk); a row given twice counts at its last place
    unique, first = np.unique(rows[::-1], return_index=True)
    starts = np.searchsorted(c.cells_["product"], unique, "left")
    counts = np.searchsorted(c.cells_["product"], unique, "right") - starts
    sel = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())   # (cells,) in cells_
    at = np.repeat(len(rows) - 1 - first, counts)                                          # (cells,) in rows
    width = len(c.attributes_)                     # a (row, attribute) pair as row * width + attribute
    wanted = np.array([i * width + a for i, p in enumerate(products) for a in c.gaps(p)], dtype=np.int64)
    keep = np.isin(at * width + c.cells_["attribute"][sel], wanted)
    sel, at = sel[keep], at[keep]
    cells = {k: v[sel] for k, v in c.cells_.items()}
    cells["product"] = local[at]
    return cells
