"""Imputing a catalog file: read a chunk of products, score its gaps, write its lines; repeat.

Memory stays that of the model and one chunk, whatever the catalog's size (CSV and Parquet outputs excepted: their
columns come from all products, so their rows are held until the end). The three outputs are written as one set
(:func:`~kgattr.io.outputs.staged`): temporary files beside the targets, renamed only once every chunk is written.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

CHUNK = 4096           # products scored at a time: large enough for the network's batches, small beside the model


class Imputed(NamedTuple):
    products: int
    filled: int        # cells filled, written to the cells sidecar
    review: int        # gaps left empty, written to the review sidecar


@contextmanager
def collector_paused():
    """Python's cycle collector off inside, and back as it was after. A chunk's completions are millions of small
    acyclic objects, freed by reference counting once written; while they are built, each quarter of growth would
    set off a pass over every object alive (the model's included): a fifth of the time of imputing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def thresholds(completer, min_confidence: float, precision: float | None) -> tuple[dict, float]:
    """(attribute -> confidence threshold under ``precision`` ({} without), the lowest threshold)."""
    floor = {}
    if precision is not None:
        floor = {a: float("inf") if t is None else t for a, t in completer.thresholds(precision).items()}
    return floor, min(floor.values(), default=min_confidence)


def fill(completer, catalog, min_confidence: float, floor: dict, lowest: float, impute=None, reviewed=None):
    """(attributes by SKU with the gaps filled, filled cells, cells left for review) of ``catalog``.

    Args:
        floor, lowest: from :func:`thresholds`; attributes absent from ``floor`` use ``min_confidence``.
        impute: ``impute(catalog, evidence_floor)`` -> completions (None: ``completer.impute``; the Ray path
            gives its own).
        reviewed: a :class:`~kgattr.engine.reviewed.Reviewed` whose refused values are never proposed.
    """
    filled, rows, unsure = {}, [], []
    impute = impute or (lambda cat, floor_: completer.impute(cat, evidence_floor=floor_, reviewed=reviewed))
    for pc in impute(catalog, lowest):
        attrs = dict(catalog[pc.sku].attributes)
        for c in pc.completions:
            if c.value is None or c.attribute in attrs:
                continue
            threshold = floor.get(c.attribute, min_confidence)
            if c.confidence >= threshold:
                attrs[c.attribute] = c.value
                rows.append({"sku": pc.sku, "attribute": c.attribute, "value": c.value, "confidence": c.confidence,
                             "source": "kgattr", "evidence": c.evidence})
            else:
                unsure.append({"sku": pc.sku, "attribute": c.attribute, "best_guess": c.value,
                               "confidence": c.confidence, "threshold": None if threshold == float("inf") else threshold,
                               "alternatives": c.alternatives})
        filled[pc.sku] = attrs
    return filled, rows, unsure


def impute_file(completer, catalog: Path, output: Path, cells: Path, review: Path, *, min_confidence: float,
                precision: float | None = None, catalog_format: str | None = None, chunk: int = CHUNK,
                impute=None, reviewed=None) -> Imputed:
    """Fill the gaps of the catalog file ``catalog`` chunk by chunk; write the filled catalog to ``output``, the
    filled cells to ``cells`` and the gaps left empty to ``review``. The outputs are those of imputing the whole
    catalog at once.

    Args:
        min_confidence: fill cells at least this confident ...
        precision: ... or, instead, where the attribute's estimated precision is at least this.
        catalog_format: of ``catalog`` (None: by its name or content).
        chunk: products read and scored at a time.
        impute: how a chunk is imputed (see :func:`fill`).
        reviewed: a :class:`~kgattr.engine.reviewed.Reviewed`: its confirmed values go to the output as known ones, its
            refused values are never proposed.
    """
    from ..io.catalog import read_chunks
    from ..io.writers import open_jsonl, records_writer, streams, write_lines
    from ..io.outputs import staged

    floor, lowest = thresholds(completer, min_confidence, precision)
    held, total = [], Imputed(0, 0, 0)               # held: product records of a CSV or Parquet output
    with staged([cells, review, output]) as tmp, open_jsonl(tmp[cells], cells) as cells_file, \
            open_jsonl(tmp[review], review) as review_file:
        out_file = open_jsonl(tmp[output], output) if streams(output) else None

        def write_chunk(part) -> Imputed:
            part = reviewed.apply(part) if reviewed else part
            filled, rows, unsure = fill(completer, part, min_confidence, floor, lowest, impute, reviewed)
            records = [p.to_json(filled.get(p.sku)) for p in part]
            if out_file is None:
                held.extend(records)
            else:
                write_lines(out_file, records)
            write_lines(cells_file, rows)
            write_lines(review_file, unsure)
            return Imputed(len(part), len(rows), len(unsure))

        try:
            for part in read_chunks(catalog, chunk, format=catalog_format):
                with collector_paused():          # the chunk's objects are freed on return, before it resumes
                    done = write_chunk(part)
                total = Imputed(*(t + d for t, d in zip(total, done)))
        finally:
            if out_file is not None:
                out_file.close()
        if out_file is None:
            records_writer(held, output)(tmp[output])
    return total
