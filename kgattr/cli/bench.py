"""`kgattr split`, `score` and `evaluate`: hide known cells, score predictions, benchmark."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .base import (CatalogFormat, OutputFormat, count, emit, format_of_catalog, format_option, natural,
                   output_format, progress as _progress, rate, rounded)
from ..io.outputs import claim
from .encode import Backend, EncoderOpt


# how `split` and `evaluate` hide cells: one definition each, so that both commands take the same split
MaskRateOpt = typer.Option(0.2, callback=rate, help="Share of known cells hidden.")
SplitSeedOpt = typer.Option(0, callback=natural, help="Random seed of the split.")
MinCountOpt = typer.Option(None, callback=count, help="Target attributes: filled at least this often in the products drawn, 2+ values (default: 2% of them, at least 20).")
ColdRateOpt = typer.Option(0.0, callback=rate, help="Share of titles whose products lose every known value.")
LimitOpt = typer.Option(None, callback=count, help="Draw this many products first; targets are chosen on the draw.")
ExcludeOpt = typer.Option(None, "--exclude", help="Attribute that is no target (repeatable), besides those detected as metadata.")


def split(catalog: Path = typer.Argument(..., help="Catalog with known values to hide."),
          out: Path = typer.Option(..., "--out", "-o", help="Directory for train.jsonl and truth.jsonl."),
          mask_rate: float = MaskRateOpt, seed: int = SplitSeedOpt, min_count: Optional[int] = MinCountOpt,
          cold_rate: float = ColdRateOpt, limit: Optional[int] = LimitOpt,
          exclude: Optional[list[str]] = ExcludeOpt, catalog_format: CatalogFormat = format_of_catalog()):
    """Hide known cells: OUT/train.jsonl keeps the rest, OUT/truth.jsonl lists the hidden ones.

    Metadata attributes (as `kgattr evaluate` finds them, plus --exclude) are dropped from train.jsonl.

    Example: kgattr split data/sample.jsonl --min-count 50 --cold-rate 0.05 -o out/split
    """
    from ..bench.benchmark import prepare
    from ..bench.evaluation import split_catalog
    from ..io.catalog import read_catalog
    from ..io.writers import catalog_writer, jsonl_writer
    from ..io.outputs import write_set

    train, truth = out / "train.jsonl", out / "truth.jsonl"
    with claim([("--out", train), ("--out", truth)], [("the input catalog", catalog)]):
        drawn, targets, excluded = prepare(read_catalog(catalog, format=catalog_format), limit=limit, seed=seed,
                                           min_count=min_count, exclude=exclude or ())
        result = split_catalog(drawn, mask_rate=mask_rate, seed=seed, cold_rate=cold_rate, attributes=targets)
        write_set({train: catalog_writer(result.train, train), truth: jsonl_writer(result.truth(), truth)})
    for a, why in excluded.items():
        typer.echo(f"not a target: {a} ({why})")
    typer.echo(f"{len(result.hidden)} cells of {len(targets)} attributes hidden ({len(result.cold)} cold products) -> "
               f"{out / 'train.jsonl'}, {out / 'truth.jsonl'}")


def score(truth: Path = typer.Argument(..., help="Hidden cells, as `kgattr split` writes them."),
          predictions: Path = typer.Argument(..., help='JSON Lines: {"sku", "attribute", "value", "confidence"}.'),
          ontology: Optional[Path] = typer.Option(None, "--ontology", help="Count predictions breaking its rules."),
          as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
          fmt: Optional[OutputFormat] = format_option()):
    """Score any method's predictions of hidden cells: accuracy, coverage at precision, ECE, rule breaking.

    json is the full report; jsonl and csv give one row to all cells, one to the cold products' and one to
    each attribute's.

    Example: kgattr score out/split/truth.jsonl out/split/imputed.jsonl.cells.jsonl
    """
    from ..bench.evaluation import read_cells, score as score_cells

    truth_cells = read_cells(truth)
    hidden = [(c["sku"], c["attribute"], c["value"]) for c in truth_cells]
    cells = read_cells(predictions)
    guesses = {(c["sku"], c["attribute"]): c["value"] for c in cells}
    confidences = {(c["sku"], c["attribute"]): float(c["confidence"]) for c in cells if "confidence" in c}
    rules = categories = None
    if ontology is not None:
        from ..exceptions import CatalogError
        from ..ontology.files import load_ontology
        from ..ontology.rules import RuleSet

        rules = RuleSet(load_ontology(ontology))
        categories = {c["sku"]: tuple(c.get("category") or ()) for c in truth_cells}
        if not all(categories.values()):
            raise CatalogError(f"{truth}: cells need a 'category' to check rules (write them with `kgattr split`)")
    result = score_cells(hidden, guesses, confidences if len(confidences) == len(cells) and cells else None,
                         cold={c["sku"] for c in truth_cells if c.get("cold")}, rules=rules, categories=categories)
    fmt = output_format(fmt, as_json)
    if fmt == "json":
        typer.echo(json.dumps(rounded(result), indent=1))
        return
    if fmt != "table":
        per, cold = result.pop("per_attribute"), result.pop("cold", None)
        emit([{"scope": "all", **result}] + ([{"scope": "cold", **cold}] if cold else [])
             + [{"scope": "attribute", "attribute": a, **r} for a, r in per.items()], fmt)
        return
    typer.echo(_score_line(result) + f"  ({result['cells']} cells)")
    if "cold" in result:
        typer.echo("cold products: " + _score_line(result["cold"]) + f"  ({result['cold']['cells']} cells)")
    for a, r in result["per_attribute"].items():
        typer.echo(f"  {a:30s} {r['accuracy']:.4f}  ({r['cells']} cells)")


def _score_line(r: dict) -> str:
    line = f"micro {r['micro']:.4f}  macro {r['macro']:.4f}  coverage {r['coverage']:.4f}"
    if "ece" in r:
        line += f"  ECE {r['ece']:.4f}  " + "  ".join(f"cov@{p} {c['coverage']:.3f}"
                                                      for p, c in r["coverage_at_precision"].items())
    if "rule_breaking" in r:
        line += f"  rule-breaking {r['rule_breaking']:.4f}"
    return line


def evaluate(catalogs: list[Path] = typer.Argument(..., help="Catalog(s) with known values to hide; a folder stands for its */catalog.jsonl.gz."),
             mask_rate: float = MaskRateOpt, seed: int = SplitSeedOpt, min_count: Optional[int] = MinCountOpt,
             cold_rate: float = ColdRateOpt, limit: Optional[int] = LimitOpt,
             draw: Optional[list[int]] = typer.Option(None, "--draw", help="Also run on a random draw of N products (repeatable); reports go to REPORT/NAME/draw-N."),
             exclude: Optional[list[str]] = ExcludeOpt,
             settings: Optional[Path] = typer.Option(None, "--settings", help="TOML file of per-catalog `exclude` and `limit`, keyed by catalog name (e.g. bench/catalogs.toml)."),
             epochs: Optional[int] = typer.Option(None, callback=count, help="kgattr's GNN training epochs [default: until the held-out loss stops falling]."),
             text_model: Optional[Path] = typer.Option(None, "--text-model", help="Local Hugging Face model directory."),
             methods: str = typer.Option("majority,tfidf,knn,text,graph,kgattr", help="Comma-separated methods to run."),
             encoder: Backend = EncoderOpt,
             report: Optional[Path] = typer.Option(None, "--report", help="Directory for report.json, report.md, plots.")):
    """Hide known cells, fit every method on the rest, score them all on the hidden cells.

    Targets are the attributes filled often enough in the products drawn, less metadata: (almost)
    constant values, values copying the title or description or naming the category, and those named
    by --exclude or --settings; the report lists them with the reason.

    With several catalogs, a folder or --draw, each catalog runs at its main size (--limit, else the
    `limit` of its --settings entry, else all products) and on each draw; REPORT/NAME/all (or draw-N)
    gets each report and REPORT/summary.md one table per catalog.

    Example: kgattr evaluate data/sample.jsonl --min-count 50 --report out/eval

    Example: kgattr evaluate ../shared/data --draw 1500 --settings bench/catalogs.toml --report out/bench
    """
    from ..bench.benchmark import ALL_METHODS, markdown, run_benchmark, write_report
    from ..bench.catalogs import find_catalogs, read_settings, run_catalogs, summary_markdown
    from ..io.catalog import read_catalog

    chosen = tuple(m.strip() for m in methods.split(","))
    for m in chosen:
        if m not in ALL_METHODS:
            raise typer.BadParameter(f"unknown method {m!r} (choose from {', '.join(ALL_METHODS)})",
                                     param_hint="--methods")
    options = dict(mask_rate=mask_rate, seed=seed, min_count=min_count, cold_rate=cold_rate, epochs=epochs,
                   methods=chosen, text_model=str(text_model) if text_model else None, progress=_progress(),
                   text_backend=encoder)
    paths = find_catalogs(catalogs)
    inputs = [*(("the input catalog", c) for c in paths), ("the text model", text_model)]
    if len(paths) > 1 or draw or settings:
        if report is None:
            raise typer.BadParameter("needed with several catalogs, --draw or --settings", param_hint="--report")
        with claim([("--report", report / "summary.md")], inputs):
            results = run_catalogs(paths, report, draws=draw or (), limit=limit, exclude=exclude or (),
                                   settings=read_settings(settings) if settings else None, **options)
        typer.echo(summary_markdown(results) + f"reports -> {report}")
        return
    names = ("report.json", "report.md", "precision_coverage.png", "reliability.png") if report else ()
    with claim([("--report", report / name) for name in names], inputs):
        bench = run_benchmark(read_catalog(paths[0]), limit=limit, exclude=exclude or (), **options)
        typer.echo(markdown(bench.summary).split("\n\n## ")[0])
        if report:
            write_report(bench, report)
            typer.echo(f"report -> {report}")
