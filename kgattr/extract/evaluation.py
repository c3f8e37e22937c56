"""How well values are read out of text: the combined extractor and each of its members (the exact dictionary,
the tagger, the copy rules) on held-out titles, by precision, recall and F1 over (sku, attribute, value), micro
and macro (``kgattr extract evaluate``)."""
from __future__ import annotations

import time

import numpy as np

from ..io.catalog import Product
from ..text.lexical import fold
from .extraction import FIELDS, Lexicon, Span, best_values, held_out, tag_spans


def score_extraction(products, predicted: list[list[Span]], attributes: list[str], seen: Lexicon) -> dict:
    """Precision, recall and F1 over (sku, attribute, value) of the products' known values of ``attributes``.

    Each method gives at most one value per attribute (:func:`best_values`). A value for an attribute the
    product does not have, or a wrong one, is a false positive; values compare by :func:`~kgattr.text.lexical.fold`.
    Also: macro F1 (the mean F1 of the attributes with a known value in ``products``), recall of the values the
    text states verbatim, and how many values absent from ``seen`` (the training catalog's) were found.
    """
    wanted = set(attributes)
    per: dict[str, list[int]] = {a: [0, 0, 0] for a in attributes}           # tp, fp, fn
    stated = [0, 0]                                                             # found, total
    unseen = [0, 0, 0]                                                          # found, total, stated in text
    for p, spans in zip(products, predicted):
        best = {a: s for a, s in best_values(spans).items() if a in wanted}
        gold = {a: v for a, v in p.attributes.items() if a in wanted}
        in_text = {a for f in FIELDS for _, _, a in tag_spans(getattr(p, f), gold)}
        for a, s in best.items():
            per[a][0 if a in gold and fold(gold[a]) == fold(s.value) else 1] += 1
        for a, v in gold.items():
            hit = a in best and fold(best[a].value) == fold(v)
            per[a][2] += not hit
            if a in in_text:
                stated[0] += hit
                stated[1] += 1
            if seen.lookup(a, v) is None:
                unseen[0] += hit
                unseen[1] += 1
                unseen[2] += a in in_text
    tp, fp, fn = (sum(x[i] for x in per.values()) for i in range(3))
    macro = [_prf(*x)["f1"] for x in per.values() if x[0] + x[2]]
    return {**_prf(tp, fp, fn), "macro_f1": float(np.mean(macro)) if macro else 0.0,
            "recall_stated": stated[0] / max(1, stated[1]), "stated": stated[1],
            "unseen_found": unseen[0], "unseen": unseen[1], "unseen_stated": unseen[2],
            "attributes": {a: _prf(*x) for a, x in per.items()}}


def _prf(tp: int, fp: int, fn: int) -> dict:
    p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp, "fn": fn}


def evaluate_extraction(products, extractor, *, test_rate: float = 0.1, seed: int = 0) -> dict:
    """Score ``extractor`` (a :class:`~kgattr.extract.combined.CombinedExtractor`) and each of its members.

    Unfitted, it is trained on the products outside held-out titles and scored on the held-out products;
    fitted (applied to another catalog), on every product. Scores are over every attribute the products have,
    the ones their text never states included, reading title and description, then titles alone.
    """
    products = list(products)
    began = time.perf_counter()
    if hasattr(extractor, "orders_"):
        train, test = [], products
    else:
        train, test = held_out(products, test_rate, seed)
        extractor.fit(train)
    fitted = time.perf_counter()
    attributes = sorted({a for p in train + test for a in p.attributes})
    titles = [Product(p.sku, p.title, "", p.category, p.attributes) for p in test]
    methods, seconds = {}, {"train": round(fitted - began, 1)}
    for suffix, part in (("", test), (" (titles only)", titles)):
        readings = extractor.readings(part)
        found = {m: [list(r.values()) for r in rs] for m, rs in readings.items()}
        found["combined"] = extractor.combine(readings)
        for name, spans in found.items():
            methods[name + suffix] = score_extraction(test, spans, attributes, extractor.lexicon_)
        seconds.setdefault("extract", round(time.perf_counter() - fitted, 1))
    return {"products": {"train": len(train), "test": len(test)}, "attributes": attributes, "seconds": seconds,
            "methods": methods}


def markdown(report: dict) -> str:
    """The evaluation as Markdown: overall figures, then per attribute with a known value among those scored."""
    methods = report["methods"]
    lines = ["| method | precision | recall | F1 | macro F1 | recall of stated values | unseen values found |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, m in methods.items():
        lines.append(f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['macro_f1']:.4f} | "
                     f"{m['recall_stated']:.4f} | {m['unseen_found']} of {m['unseen']} ({m['unseen_stated']} stated) |")
    lines += ["", "| attribute | " + " | ".join(f"{n} P / R / F1" for n in methods) + " |",
              "| --- | " + " | ".join("---:" for _ in methods) + " |"]
    for a in report["attributes"]:
        cells = [methods[n]["attributes"][a] for n in methods]
        if not cells[0]["tp"] + cells[0]["fn"]:                   # no known value among the products scored
            continue
        lines.append(f"| {a} | " + " | ".join(f"{c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f}"
                                               for c in cells) + " |")
    return "\n".join(lines)
