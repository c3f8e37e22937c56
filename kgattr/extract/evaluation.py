"""How well values are read out of text: an extractor beside the dictionary baseline, on held-out titles, by
precision, recall and F1 over (sku, attribute, value) (``kgattr extract evaluate``)."""
from __future__ import annotations

import time

from ..io.catalog import Product, drawn_titles, title_key
from ..text.lexical import fold
from .extraction import FIELDS, DictionaryExtractor, Lexicon, Span, best_values, tag_spans
from .tagger import Extractor


def held_out(products, test_rate: float, seed: int) -> tuple[list, list]:
    """(train, test) products, whole titles on one side (variants share their title and most values)."""
    test_titles = drawn_titles(products, test_rate, seed)
    train, test = [], []
    for p in products:
        (test if title_key(p.title) in test_titles else train).append(p)
    return train, test


def score_extraction(products, predicted: list[list[Span]], attributes: list[str], seen: Lexicon) -> dict:
    """Precision, recall and F1 over (sku, attribute, value) of the products' known values of ``attributes``.

    Each method gives at most one value per attribute (:func:`best_values`). A value for an attribute the
    product does not have, or a wrong one, is a false positive; values compare by :func:`~kgattr.text.lexical.fold`.
    Also: recall of the values the text states verbatim, and how many values absent from ``seen`` (the
    training catalog's) were found.
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
    return {**_prf(tp, fp, fn), "recall_stated": stated[0] / max(1, stated[1]), "stated": stated[1],
            "unseen_found": unseen[0], "unseen": unseen[1], "unseen_stated": unseen[2],
            "attributes": {a: _prf(*x) for a, x in per.items()}}


def _prf(tp: int, fp: int, fn: int) -> dict:
    p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp, "fn": fn}


def evaluate_extraction(products, *, test_rate: float = 0.1, seed: int = 0, extractor=None) -> dict:
    """Score ``extractor`` (a :class:`~kgattr.extract.tagger.Extractor`) beside the dictionary baseline.

    Unfitted, it is trained on the products outside held-out titles and both are scored on the held-out
    products; fitted (applied to another catalog), both are scored on every product, the dictionary
    looking up the values the extractor was trained with. Scores are over the attributes the extractor
    learned, reading title and description, then titles alone.
    """
    extractor = extractor or Extractor(seed=seed)
    began = time.perf_counter()
    if hasattr(extractor, "model_"):
        train, test = [], list(products)
    else:
        train, test = held_out(list(products), test_rate, seed)
        extractor.fit(train)
    fitted = time.perf_counter()
    predicted = extractor.extract(test)
    done = time.perf_counter()
    attributes, seen = extractor.attributes_, extractor.lexicon_
    dictionary = DictionaryExtractor().fit([], attributes, seen)
    titles = [Product(p.sku, p.title, "", p.category, p.attributes) for p in test]
    methods = {}
    for suffix, part, found in (("", test, predicted), (" (titles only)", titles, extractor.extract(titles))):
        methods["extractor" + suffix] = score_extraction(test, found, attributes, seen)
        methods["dictionary" + suffix] = score_extraction(test, dictionary.extract(part), attributes, seen)
    return {"products": {"train": len(train), "test": len(test)}, "attributes": attributes,
            "seconds": {"train": round(fitted - began, 1), "extract": round(done - fitted, 1)}, "methods": methods}


def markdown(report: dict) -> str:
    """The evaluation as Markdown: overall figures, then per attribute."""
    methods = report["methods"]
    lines = ["| method | precision | recall | F1 | recall of stated values | unseen values found |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, m in methods.items():
        lines.append(f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | "
                     f"{m['recall_stated']:.4f} | {m['unseen_found']} of {m['unseen']} ({m['unseen_stated']} stated) |")
    lines += ["", "| attribute | " + " | ".join(f"{n} P / R / F1" for n in methods) + " |",
              "| --- | " + " | ".join("---:" for _ in methods) + " |"]
    for a in report["attributes"]:
        cells = [methods[n]["attributes"][a] for n in methods]
        lines.append(f"| {a} | " + " | ".join(f"{c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f}"
                                               for c in cells) + " |")
    return "\n".join(lines)
