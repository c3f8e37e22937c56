"""`kgattr evaluate`: split -> fit -> predict -> score for several methods on one split, and the report.

The report directory holds report.json (every figure), report.md (the tables) and PNG plots:
per-attribute accuracy, precision-coverage curves and reliability diagrams.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.completion import precision_coverage
from ..io.catalog import Catalog, Product
from .evaluation import PRECISIONS, Split, reliability, score, split_catalog, twin_values

log = logging.getLogger(__name__)
ALL_METHODS = ("majority", "tfidf", "knn", "text", "graph", "kgattr")
LABELS = {"majority": "majority value of the category", "tfidf": "tf-idf + LinearSVC (DataWig-style)",
          "knn": "kNN vote, BERT embeddings (FAISS)", "text": "text only: BERT embedding + softmax",
          "graph": "graph only: the GNN without text (GRAPE-style)",
          "kgattr": "kgattr full: GNN + BERT + retrieval + rules"}


@dataclass
class Benchmark:
    """What a run produced: ``summary`` (report.json) and each method's predictions, for the plots."""
    summary: dict
    split: Split
    predictions: dict[str, dict[tuple[str, str], tuple[str, float]]]


def _kgattr(train: Catalog, epochs: int | None, seed: int, progress: bool, text_model, cache_dir,
            read_text: bool, min_attribute_count: int, text_backend: str):
    from ..completer import AttributeCompleter

    completer = AttributeCompleter(text_model=text_model, seed=seed, progress=progress, cache_dir=cache_dir,
                                   text_backend=text_backend, read_text=read_text, min_attribute_count=min_attribute_count,
                                   **({"epochs": epochs} if epochs else {})).fit(train)
    out = {}
    for pc in completer.impute(train, evidence_floor=float("inf")):      # accuracy needs values, not evidence
        for c in pc.completions:
            if c.value is not None:
                out[(pc.sku, c.attribute)] = (c.value, c.confidence)
    return out


def prepare(catalog: Catalog, *, limit: int | None = None, seed: int = 0, min_count: int | None = None,
            exclude=()) -> tuple[Catalog, list[str], dict[str, str]]:
    """Draw ``limit`` products, then choose the target attributes on the draw.

    Attributes that would be targets but are listing metadata (:func:`~kgattr.bench.evaluation.metadata_attributes`,
    or named in ``exclude``) are dropped from the products altogether, so no method reads or predicts them.

    Returns:
        (the drawn catalog without those attributes, the targets, {dropped attribute: reason}).
    """
    from .evaluation import draw, metadata_attributes, target_attributes

    drawn = draw(catalog, limit, seed)
    candidates = set(target_attributes(drawn, min_count)) | set(exclude)
    excluded = {a: why for a, why in metadata_attributes(drawn, set(exclude)).items() if a in candidates}
    if excluded:
        drawn = Catalog([Product(p.sku, p.title, p.description, p.category,
                                 {a: v for a, v in p.attributes.items() if a not in excluded}, p.extra)
                         for p in drawn], catalog.source)
    return drawn, target_attributes(drawn, min_count), excluded


def run_benchmark(catalog: Catalog, *, mask_rate: float = 0.2, seed: int = 0, min_count: int | None = None,
                  cold_rate: float = 0.0, limit: int | None = None, epochs: int | None = None,
                  methods: tuple[str, ...] = ALL_METHODS, text_model: str | None = None, progress: bool = False,
                  cache_dir=None, exclude=(), text_backend: str = "torch") -> Benchmark:
    """Every method of ``methods`` on one split; rule breaking is judged by the ontology induced from its
    visible cells (what kgattr itself is given).

    Args:
        limit: draw this many products first; targets are chosen on the draw (see :func:`prepare`).
        min_count: target attributes are filled at least this often in the draw [default: 2% of its
            products, at least 20]. kgattr is trained as a user trains it, and on every target even when
            rarer than its default ``min_attribute_count``.
        exclude: attribute names that are no targets, besides those detected as listing metadata.
        text_backend: how BERT runs, for every method that reads its embeddings (see :mod:`kgattr.text.encoding`).
    """
    from ..completer import AttributeCompleter
    from ..ontology.mining import induce_ontology
    from ..ontology.rules import RuleSet
    from .baselines import METHODS, NEEDS_TEXT
    from .evaluation import default_min_count

    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r} (choose from {', '.join(ALL_METHODS)})")
    drawn, targets, excluded = prepare(catalog, limit=limit, seed=seed, min_count=min_count, exclude=exclude)
    split = split_catalog(drawn, mask_rate=mask_rate, seed=seed, cold_rate=cold_rate, attributes=targets)
    train = split.train
    wanted: dict[str, list[str]] = {}
    for s, a, _ in split.hidden:
        wanted.setdefault(a, []).append(s)
    visible = Counter(a for p in train for a in p.attributes if a in wanted)
    summary = {"split": {"products": len(train), "catalog_products": len(catalog), "mask_rate": mask_rate,
                         "seed": seed, "cold_rate": cold_rate, "cold_products": len(split.cold),
                         "min_count": min_count or default_min_count(len(drawn)), "attributes": sorted(wanted),
                         "hidden": len(split.hidden), "excluded": excluded},
               "methods": {}}
    twins = twin_values(split)
    twin_cells = [c for c in split.hidden if c[:2] in twins]
    summary["twins"] = score(twin_cells, twins)
    unseen = _unseen_cells(split)
    summary["unseen"] = {k: len(v) for k, v in unseen.items()}
    categories = {p.sku: tuple(p.category) for p in train}
    rules = RuleSet(induce_ontology(train))
    text = None
    if NEEDS_TEXT & set(methods):
        from ..text.encoder import TextEncoder

        t0 = time.time()
        text = TextEncoder(text_model, cache_dir=cache_dir, backend=text_backend).encode([p.text for p in train], progress=progress)
        summary["text_seconds"] = time.time() - t0             # knn's and text's input, outside their seconds
    predictions = {}
    for name in methods:
        t0, c0 = time.time(), time.process_time()
        if name in ("kgattr", "graph"):
            # as a user trains it, and down to the rarest target so that every target is modelled
            floor = min(AttributeCompleter().min_attribute_count, max(1, min(visible.values(), default=20)))
            predictions[name] = _kgattr(train, epochs, seed, progress, text_model, cache_dir, name == "kgattr", floor,
                                        text_backend)
        else:
            predictions[name] = METHODS[name](train, wanted, text)
        seconds, cpu_seconds = time.time() - t0, time.process_time() - c0      # wall clock; CPU of all threads
        guesses = {k: v for k, (v, _) in predictions[name].items()}
        confidences = {k: c for k, (_, c) in predictions[name].items()}
        summary["methods"][name] = dict(score(split.hidden, guesses, confidences, cold=split.cold, rules=rules,
                                              categories=categories), seconds=seconds,
                                        cpu_seconds=cpu_seconds,
                                        twins=score(twin_cells, guesses),
                                        unseen={k: score(v, guesses)["micro"] for k, v in unseen.items()})
        log.info("%s: micro %.4f macro %.4f (%.0f s)", name, summary["methods"][name]["micro"],
                 summary["methods"][name]["macro"], seconds)
    return Benchmark(summary, split, predictions)


def markdown(summary: dict) -> str:
    """The report's tables: methods side by side, then per-attribute accuracy."""
    methods = summary["methods"]
    s = summary["split"]
    drawn = f" drawn from {s['catalog_products']}" if s.get("catalog_products", s["products"]) > s["products"] else ""
    lines = [f"# kgattr evaluate: {s['hidden']} hidden cells of {len(s['attributes'])} attributes, "
             f"{s['products']} products{drawn} (mask rate {s['mask_rate']}, seed {s['seed']}"
             + (f", {s['cold_products']} cold products" if s["cold_products"] else "") + ")", "",
             "| method | micro | macro | coverage | " + " | ".join(f"cov@{p:.2f}" for p in PRECISIONS)
             + " | ECE | rule-breaking | cold micro | seconds |",
             "| --- |" + " ---: |" * (7 + len(PRECISIONS))]
    for name, r in methods.items():
        cap = r.get("coverage_at_precision", {})
        cold = r.get("cold", {}).get("micro")
        lines.append(f"| {LABELS[name]} | {r['micro']:.4f} | {r['macro']:.4f} | {r['coverage']:.4f} | "
                     + " | ".join(f"{cap[f'{p:.2f}']['coverage']:.3f}" if f"{p:.2f}" in cap else "" for p in PRECISIONS)
                     + f" | {r.get('ece', float('nan')):.4f} | {r.get('rule_breaking', 0):.4f} | "
                     + (f"{cold:.4f}" if cold is not None else "") + f" | {r['seconds']:.0f} |")
    if s.get("excluded"):
        lines += ["", "Not targets: " + "; ".join(f"{a} ({why})" for a, why in s["excluded"].items()) + "."]
    lines += ["", "Coverage at precision p: share of hidden cells filled when the confidence threshold is the "
              "lowest that keeps precision >= p on validation products (half of them, by SKU hash); "
              "measured on the other half.", "", "## Accuracy per attribute", "",
              "| attribute | cells | " + " | ".join(methods) + " |", "| --- | ---: |" + " ---: |" * len(methods)]
    first = next(iter(methods.values()))
    for a, r in first["per_attribute"].items():
        lines.append(f"| {a} | {r['cells']} | "
                     + " | ".join(f"{m['per_attribute'][a]['accuracy']:.3f}" for m in methods.values()) + " |")
    return "\n".join(lines + _unseen_lines(summary) + _twin_lines(summary)) + "\n"


def _unseen_cells(split) -> dict[str, list]:
    """Hidden cells whose value no visible cell of the attribute holds: all, and those the product's title or
    description states word for word."""
    from ..engine.evidence import text_evidence

    seen = {(a, v) for p in split.train for a, v in p.attributes.items()}
    products = {p.sku: p for p in split.train}
    cells = [c for c in split.hidden if c[1:] not in seen]
    return {"all": cells, "stated": [c for c in cells if text_evidence(c[2], products[c[0]].title,
                                                                      products[c[0]].description)]}


def _unseen_lines(summary: dict) -> list[str]:
    """The section on hidden values never seen in training."""
    unseen, methods = summary.get("unseen"), summary["methods"]
    if not unseen or not unseen["all"]:
        return []
    return ["", "## Values never seen in training", "",
            f"{unseen['all']} hidden cells ({unseen['all'] / max(summary['split']['hidden'], 1):.1%}) hold a value "
            f"that no visible cell of their attribute holds; the product's text states {unseen['stated']} of them "
            "word for word. Accuracy on them:", "",
            "| cells | count | " + " | ".join(methods) + " |", "| --- | ---: |" + " ---: |" * len(methods)] + \
        [f"| {label} | {unseen[k]} | " + " | ".join(f"{m['unseen'][k]:.3f}" for m in methods.values()) + " |"
         for k, label in (("all", "never seen"), ("stated", "never seen, stated in the text"))]


def _twin_lines(summary: dict, min_cells: int = 50) -> list[str]:
    """The section on hidden cells whose product has twins (same title and description) showing the attribute."""
    twins, methods = summary.get("twins"), summary["methods"]
    if not twins or not twins["cells"]:
        return []
    row = lambda name, cells, agree, accuracy: (f"| {name} | {cells} | {agree:.3f} | "
                                                + " | ".join(f"{accuracy(m):.3f}" for m in methods.values()) + " |")
    lines = ["", "## Cells whose product has twins", "",
             f"{twins['cells']} hidden cells belong to products whose title and description other products share and "
             f"show the attribute. The twins' (majority) value is the hidden one in {twins['micro']:.1%} of them: "
             "where it is not, the labels differ where the text does not (mostly variants), and the text alone "
             f"cannot tell which is meant. Attributes with at least {min_cells} such cells:", "",
             "| attribute | cells | twins agree | " + " | ".join(methods) + " |",
             "| --- | ---: | ---: |" + " ---: |" * len(methods),
             row("all", twins["cells"], twins["micro"], lambda m: m["twins"]["micro"])]
    for a, t in twins["per_attribute"].items():
        if t["cells"] >= min_cells:
            lines.append(row(a, t["cells"], t["accuracy"], lambda m: m["twins"]["per_attribute"][a]["accuracy"]))
    return lines


def _arrays(bench: Benchmark, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of the cells ``name`` predicted."""
    pred = bench.predictions[name]
    cells = [(pred[(s, a)][1], pred[(s, a)][0] == v) for s, a, v in bench.split.hidden if (s, a) in pred]
    return np.array([c for c, _ in cells], float), np.array([k for _, k in cells], bool)


def plot(bench: Benchmark, directory: Path) -> list[Path]:
    """accuracy.png (per attribute), precision_coverage.png, reliability.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = bench.summary["methods"]
    paths = []
    attrs = list(next(iter(methods.values()))["per_attribute"])
    fig, ax = plt.subplots(figsize=(max(8, len(attrs) * 0.35), 5))
    width = 0.8 / len(methods)
    for i, (name, r) in enumerate(methods.items()):
        ax.bar(np.arange(len(attrs)) + i * width, [r["per_attribute"][a]["accuracy"] for a in attrs], width, label=name)
    ax.set_xticks(np.arange(len(attrs)) + 0.4 - width / 2, attrs, rotation=90, fontsize=7)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    paths.append(directory / "accuracy.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=120)
    fig, (pc, rel) = plt.subplots(1, 2, figsize=(11, 5))
    total = len(bench.split.hidden)
    for name in methods:
        conf, right = _arrays(bench, name)
        _, coverage, precision = precision_coverage(conf, right, total)
        pc.plot(coverage, precision, label=name)
        rel.plot(*reliability(conf, right)[:2], "o-", label=name)
    pc.set(xlabel="coverage (share of hidden cells filled)", ylabel="precision", ylim=(0.5, 1.0),
           title="precision-coverage")
    rel.plot([0, 1], [0, 1], "k:", lw=1)
    rel.set(xlabel="confidence", ylabel="accuracy", title="reliability (15 bins)")
    for ax in (pc, rel):
        ax.legend(fontsize=8)
    fig.tight_layout()
    for name, ax in (("precision_coverage.png", pc), ("reliability.png", rel)):
        extent = ax.get_tightbbox(fig.canvas.get_renderer()).transformed(fig.dpi_scale_trans.inverted())
        paths.append(directory / name)
        fig.savefig(paths[-1], dpi=120, bbox_inches=extent.expanded(1.02, 1.02))
    plt.close("all")
    return paths


def write_report(bench: Benchmark, directory) -> None:
    """report.json, report.md and the plots, each written to a temporary file first."""
    from ..io.outputs import atomic_write

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / "report.json", lambda tmp: tmp.write_text(json.dumps(bench.summary, indent=1)))
    atomic_write(directory / "report.md", lambda tmp: tmp.write_text(markdown(bench.summary)))
    tmp = directory / ".plots"
    tmp.mkdir(exist_ok=True)
    for path in plot(bench, tmp):
        path.replace(directory / path.name)
    tmp.rmdir()
