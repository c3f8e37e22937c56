"""`kgattr evaluate` over several catalogs: finding them, their settings, one run per catalog and size, and the
summary that compares them (``REPORT/summary.md``)."""
from __future__ import annotations

import logging
from pathlib import Path

from ..exceptions import CatalogError
from ..io.catalog import read_catalog
from ..io.outputs import atomic_write
from .benchmark import run_benchmark, write_report

log = logging.getLogger(__name__)


def catalog_name(path: Path) -> str:
    """What a catalog is called in reports: the folder of ``NAME/catalog.jsonl.gz``, else the file's stem."""
    path = Path(path)
    return path.parent.name if path.name.startswith("catalog.") and path.parent.name else path.name.split(".")[0]


def find_catalogs(paths) -> list[Path]:
    """The catalog files of ``paths``: a folder stands for its ``catalog.jsonl.gz`` or, failing that, for
    every ``*/catalog.jsonl.gz`` under it (the layout of the shared data folder)."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            found = [path / "catalog.jsonl.gz"] if (path / "catalog.jsonl.gz").exists() \
                else sorted(path.glob("*/catalog.jsonl.gz"))
            if not found:
                raise CatalogError(f"{path}: no catalog.jsonl.gz in the folder or its subfolders")
            out += found
        else:
            out.append(path)
    return out


def read_settings(path) -> dict[str, dict]:
    """Per-catalog settings of a TOML file: ``[NAME]`` (see :func:`catalog_name`) with ``exclude`` (a list of
    attribute names) and ``limit`` (products drawn for the main run).

    Returns:
        {name: {"exclude": [...], "limit": int | None}}.
    """
    import tomllib

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CatalogError(f"{path}: {e}") from None
    out = {}
    for name, table in raw.items():
        unknown = set(table) - {"exclude", "limit"} if isinstance(table, dict) else {"(not a table)"}
        if unknown:
            raise CatalogError(f"{path}: [{name}]: unknown key {sorted(unknown)[0]!r} (known: exclude, limit)")
        exclude, limit = table.get("exclude", []), table.get("limit")
        if not (isinstance(exclude, list) and all(isinstance(a, str) for a in exclude)):
            raise CatalogError(f"{path}: [{name}]: 'exclude' must be a list of attribute names")
        if limit is not None and not (isinstance(limit, int) and limit > 0):
            raise CatalogError(f"{path}: [{name}]: 'limit' must be a positive integer")
        out[name] = {"exclude": exclude, "limit": limit}
    return out


def run_catalogs(paths, out, *, draws=(), limit: int | None = None, settings: dict | None = None, exclude=(),
                 **options) -> list[tuple[str, dict]]:
    """:func:`run_benchmark` on every catalog, once at its main size and once on each draw of ``draws``
    products (those smaller than the catalog). The reports go to ``out/NAME/all`` (or ``draw-LIMIT``) and
    ``out/NAME/draw-N``; ``out/summary.md`` (:func:`summary_markdown`) is rewritten after each run.

    Args:
        limit: products of the main run [default: the catalog's ``limit`` in ``settings``, else all].
        settings: :func:`read_settings` of the catalogs, by name.
        exclude: attributes that are no targets in any catalog, besides each catalog's own.
        options: passed to :func:`run_benchmark`.

    Returns:
        [(report directory name, report.json's summary)], in run order.
    """
    out, results = Path(out), []
    for path in find_catalogs(paths):
        name = catalog_name(path)
        own = (settings or {}).get(name, {})
        catalog = read_catalog(path)
        main = limit or own.get("limit")
        sizes = [main if main and main < len(catalog) else None]
        sizes += [n for n in draws if n < len(catalog) and n not in sizes]
        for n in sizes:
            label = f"{name}/{'all' if n is None else f'draw-{n}'}"
            log.info("%s", label)
            bench = run_benchmark(catalog, limit=n, exclude=[*exclude, *own.get("exclude", [])], **options)
            write_report(bench, out / label)
            results.append((label, bench.summary))
            atomic_write(out / "summary.md", lambda tmp: tmp.write_text(summary_markdown(results)))
    return results


def _vs(errors: float, reference: float | None) -> str:
    if reference is None:
        return ""
    return "0" if errors == reference else f"{100 * (errors / max(reference, 1e-9) - 1):+.1f}%"


def summary_markdown(results: list[tuple[str, dict]]) -> str:
    """One table per catalog: each method at each size, with micro, macro, coverage at precision 0.95, ECE,
    seconds and its errors against the tf-idf baseline's (negative: fewer)."""
    lines = ["# Benchmark summary", "",
             "Each run hides 20% (mask rate below) of the known cells of its target attributes and scores every "
             "method on them; errors vs tf-idf compares the number of wrong or missing values with the tf-idf "
             "baseline's on the same cells."]
    catalogs: dict[str, list[tuple[str, dict]]] = {}
    for label, summary in results:
        catalogs.setdefault(label.split("/")[0], []).append((label.split("/", 1)[1], summary))
    for name, runs in catalogs.items():
        lines += ["", f"## {name}", "",
                  "| products | method | micro | macro | cov@0.95 | ECE | seconds | errors vs tf-idf |",
                  "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        notes = []
        for size, summary in runs:
            s, methods = summary["split"], summary["methods"]
            errors = {m: (1 - r["micro"]) * r["cells"] for m, r in methods.items()}
            for m, r in methods.items():
                cap = r.get("coverage_at_precision", {}).get("0.95", {}).get("coverage")
                lines.append(f"| {s['products']:,} | {m} | {r['micro']:.3f} | {r['macro']:.3f} | "
                             + (f"{cap:.3f}" if cap is not None else "") + f" | {r.get('ece', float('nan')):.3f} | "
                             f"{r['seconds']:.0f} | {_vs(errors[m], errors.get('tfidf'))} |")
            notes.append(f"- {size}: {s['products']:,} of {s.get('catalog_products', s['products']):,} products, "
                         f"{len(s['attributes'])} target attributes (filled at least {s.get('min_count')} times, "
                         f"2+ values), {s['hidden']:,} hidden cells (mask rate {s['mask_rate']}, seed {s['seed']})"
                         + (f"; BERT encoding for knn and text {summary['text_seconds']:.0f} s (kgattr's seconds "
                            "include its own, from the cache)" if "text_seconds" in summary else "")
                         + ("; not targets: " + "; ".join(f"{a} ({why})" for a, why in s["excluded"].items())
                            if s.get("excluded") else ""))
        lines += [""] + notes
    return "\n".join(lines) + "\n"
