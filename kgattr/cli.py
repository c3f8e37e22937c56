"""The kgattr command line: each command parses, calls one library function, formats the result.

Exit codes: 0 success; 2 bad input or usage (a one-line error naming file, line and field).
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Complete missing product attributes: ontology + graph + GNN/BERT fusion + FAISS + rules.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
ontology_app = typer.Typer(help="Build and inspect the product ontology.", no_args_is_help=True)
graph_app = typer.Typer(help="Build and export the co-occurrence graph.", no_args_is_help=True)
app.add_typer(ontology_app, name="ontology")
app.add_typer(graph_app, name="graph")

ModelOpt = typer.Option(..., "--model", "-m", help="Model directory written by `kgattr train`.")
OntologyOpt = typer.Option(None, "--ontology", help="Ontology Turtle file (rules) to apply instead of the model's.")


def _progress() -> bool:
    return sys.stderr.isatty()


@app.command()
def train(catalog: Path = typer.Argument(..., help="Catalog (.jsonl[.gz], .csv, .parquet)."),
          out: Path = typer.Option(..., "--out", "-o", help="Model directory to write."),
          ontology: Optional[Path] = typer.Option(None, "--ontology", help="Expert ontology; induced from the catalog if absent."),
          text_model: Optional[Path] = typer.Option(None, "--text-model", help="Local Hugging Face model directory."),
          epochs: Optional[int] = typer.Option(None, help="Training epochs of the GNN [default: 4]."),
          max_length: int = typer.Option(48, help="BERT tokens per product."),
          seed: int = typer.Option(0, help="Random seed.")):
    """Learn ontology, graph, text features and the GNN from a catalog.

    Example: kgattr train data/sample.jsonl --out models/sample
    """
    from .catalog import read_catalog
    from .completer import AttributeCompleter
    from .ontology import Ontology

    cat = read_catalog(catalog)
    onto = Ontology.load(ontology) if ontology else None
    completer = AttributeCompleter(text_model=str(text_model) if text_model else None,
                                   max_length=max_length, seed=seed, progress=_progress(),
                                   **({"epochs": epochs} if epochs else {}))
    completer.fit(cat, onto)
    completer.save(out)
    typer.echo(f"trained on {len(cat)} products, {len(completer.targets_)} attributes; "
               f"{len(completer.cells_['product'])} gaps scored -> {out}")


def _table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for pc in result:
        known = ", ".join(f"{k}={v}" for k, v in pc.known.items())
        console.print(f"[bold]{pc.sku}[/bold]  known: {known}")
        table = Table("attribute", "value", "confidence", "evidence", "alternatives / rejected")
        for c in sorted(pc.completions, key=lambda c: -c.confidence):
            ev = c.evidence or {}
            parts = []
            if ev.get("similar_skus"):
                parts.append("similar: " + ", ".join(f"{s['sku']}={s['value']}" for s in ev["similar_skus"][:3]))
            if ev.get("graph"):
                parts.append("with: " + ", ".join(f"{g['attribute']}={g['value']}" for g in ev["graph"][:2]))
            if ev.get("text"):
                parts.append(f"text: {ev['text']!r}")
            other = [f"{a['value']} {a['confidence']:.2f}" for a in c.alternatives]
            other += [f"✗ {r['value']} ({r['rule']})" for r in c.rejected]
            table.add_row(c.attribute, c.value or "— abstain", f"{c.confidence:.2f}", "\n".join(parts), "\n".join(other))
        console.print(table)


@app.command()
def complete(sku: list[str] = typer.Option(..., "--sku", help="SKU to complete (repeatable)."),
             model: Path = ModelOpt,
             catalog: Optional[Path] = typer.Option(None, "--catalog", help="Catalog holding new or changed products."),
             ontology: Optional[Path] = OntologyOpt,
             as_json: bool = typer.Option(False, "--json", help="JSON output.")):
    """What is missing for a product, and what it should be, with confidence and evidence.

    Example: kgattr complete --model models/sample --sku S00007
    """
    from .catalog import read_catalog
    from .completer import AttributeCompleter

    completer = AttributeCompleter.load(model, ontology=ontology)
    result = completer.complete(list(sku), read_catalog(catalog) if catalog else None)
    if as_json:
        out = [r.to_json() for r in result]
        typer.echo(json.dumps(out[0] if len(out) == 1 else out, indent=1, ensure_ascii=False))
    else:
        _table(result)


@app.command()
def impute(catalog: Path = typer.Argument(..., help="Catalog whose gaps to fill (never modified)."),
           model: Path = ModelOpt,
           output: Path = typer.Option(..., "--output", "-o", help="Completed catalog, same format as the input."),
           cells: Optional[Path] = typer.Option(None, "--cells", help="Sidecar of filled cells (default: OUTPUT.cells.jsonl)."),
           min_confidence: float = typer.Option(0.5, "--min-confidence", help="Fill only cells at least this confident."),
           ontology: Optional[Path] = OntologyOpt):
    """Fill every gap of a catalog; original values are never changed.

    Example: kgattr impute data/sample.jsonl --model models/sample -o out/sample.jsonl
    """
    from .catalog import read_catalog, write_catalog, write_jsonl
    from .completer import AttributeCompleter

    cat = read_catalog(catalog)
    if output.resolve() == catalog.resolve():
        raise typer.BadParameter("the output must not be the input catalog", param_hint="--output")
    completer = AttributeCompleter.load(model, ontology=ontology)
    completer.progress = _progress()
    filled, rows = {}, []
    for pc in completer.impute(cat, evidence_floor=min_confidence):
        attrs = dict(cat[pc.sku].attributes)
        for c in pc.completions:
            if c.value is not None and c.confidence >= min_confidence and c.attribute not in attrs:
                attrs[c.attribute] = c.value
                rows.append({"sku": pc.sku, "attribute": c.attribute, "value": c.value, "confidence": c.confidence,
                             "source": "kgattr", "evidence": c.evidence})
        filled[pc.sku] = attrs
    cells = cells or output.with_name(output.name + ".cells.jsonl")
    write_jsonl(rows, cells)
    write_catalog(cat, output, filled)
    typer.echo(f"{len(rows)} cells filled in {len(cat)} products -> {output} (cells: {cells})")


@ontology_app.command("induce")
def ontology_induce(catalog: Path = typer.Argument(..., help="Catalog to read."),
                    output: Path = typer.Option(..., "--output", "-o", help="Turtle file to write."),
                    min_support: int = typer.Option(1, help="Times a value must be seen in a category to be allowed."),
                    max_unseen: float = typer.Option(0.005, help="Write an allowed set only where the estimated chance of an unseen value is at most this.")):
    """Bootstrap an ontology (taxonomy, attributes, allowed values as SHACL) for experts to edit.

    Example: kgattr ontology induce data/sample.jsonl -o ontology/sample.ttl
    """
    from .catalog import read_catalog
    from .ontology import Ontology

    cat = read_catalog(catalog)
    onto = Ontology.induce(cat, min_support=min_support, max_unseen=max_unseen)
    onto.save(output, source=catalog.name)
    typer.echo(f"{len(onto.categories)} categories, {len(onto.attributes)} attributes, "
               f"{len(onto.shapes)} category shapes -> {output}")


@graph_app.command("build")
def graph_build(catalog: Path = typer.Argument(..., help="Catalog to read."),
                output: Path = typer.Option(..., "--output", "-o", help="Directory to write."),
                graphml: bool = typer.Option(False, "--graphml", help="Also write graph.graphml (networkx).")):
    """Build the product/category/value co-occurrence graph.

    Example: kgattr graph build data/sample.jsonl -o graphs/sample --graphml
    """
    from .catalog import read_catalog
    from .graph import build_graph

    g = build_graph(read_catalog(catalog))
    g.save(output, graphml=graphml)
    typer.echo(f"{len(g.skus)} products, {len(g.categories)} categories, {len(g.values)} values, "
               f"{g.has_value.shape[1]} product-value and {g.cooccurs.shape[1] // 2} value-value edges -> {output}")


@app.command()
def sample(output: Path = typer.Option(..., "--output", "-o", help="Catalog file to write."),
           products: int = typer.Option(400, help="Number of products."),
           seed: int = typer.Option(0, help="Random seed.")):
    """Write the synthetic demo catalog.

    Example: kgattr sample -o data/sample.jsonl
    """
    from .catalog import write_catalog
    from .datasets import make_catalog

    write_catalog(make_catalog(products, seed=seed), output)
    typer.echo(f"{products} products -> {output}")


@app.command()
def split(catalog: Path = typer.Argument(..., help="Catalog with known values to hide."),
          out: Path = typer.Option(..., "--out", "-o", help="Directory for train.jsonl and truth.jsonl."),
          mask_rate: float = typer.Option(0.2, help="Share of known cells hidden."),
          seed: int = typer.Option(0, help="Random seed of the split."),
          min_count: int = typer.Option(1000, help="Target attributes: filled at least this often, 2+ values.")):
    """Hide a random share of the known cells: OUT/train.jsonl keeps the rest, OUT/truth.jsonl lists the hidden.

    Example: kgattr split data/sample.jsonl --min-count 50 -o out/split
    """
    from .catalog import read_catalog, write_catalog, write_jsonl
    from .evaluation import mask_cells, target_attributes

    cat = read_catalog(catalog)
    train, hidden = mask_cells(cat, mask_rate=mask_rate, seed=seed, attributes=target_attributes(cat, min_count))
    write_catalog(train, out / "train.jsonl")
    write_jsonl(({"sku": s, "attribute": a, "value": v} for s, a, v in hidden), out / "truth.jsonl")
    typer.echo(f"{len(hidden)} cells hidden -> {out / 'train.jsonl'}, {out / 'truth.jsonl'}")


@app.command()
def score(truth: Path = typer.Argument(..., help="Hidden cells, as `kgattr split` writes them."),
          predictions: Path = typer.Argument(..., help='JSON Lines: {"sku", "attribute", "value", "confidence"}.'),
          as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON.")):
    """Score any method's predictions of hidden cells: accuracy (micro, macro, per attribute), coverage, ECE.

    Example: kgattr score out/split/truth.jsonl out/split/imputed.jsonl.cells.jsonl
    """
    from .evaluation import read_cells, score as score_cells

    hidden = [(c["sku"], c["attribute"], c["value"]) for c in read_cells(truth)]
    cells = read_cells(predictions)
    guesses = {(c["sku"], c["attribute"]): c["value"] for c in cells}
    confidences = {(c["sku"], c["attribute"]): float(c["confidence"]) for c in cells if "confidence" in c}
    result = score_cells(hidden, guesses, confidences if len(confidences) == len(cells) and cells else None)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    ece = f"  ECE {result['ece']:.4f}" if "ece" in result else ""
    typer.echo(f"micro {result['micro']:.4f}  macro {result['macro']:.4f}  coverage {result['coverage']:.4f}"
               f"{ece}  ({result['cells']} cells)")
    for a, r in result["per_attribute"].items():
        typer.echo(f"  {a:30s} {r['accuracy']:.4f}  ({r['cells']} cells)")


@app.command()
def evaluate(catalog: Path = typer.Argument(..., help="Catalog with known values to hide."),
             mask_rate: float = typer.Option(0.2, help="Share of known cells hidden."),
             seed: int = typer.Option(0, help="Random seed of the split."),
             min_count: int = typer.Option(1000, help="Target attributes: filled at least this often."),
             epochs: Optional[int] = typer.Option(None, help="kgattr's GNN training epochs [default: 4]."),
             methods: str = typer.Option("tfidf,kgattr", help="Comma-separated methods to run."),
             report: Optional[Path] = typer.Option(None, "--report", help="Write report.json here.")):
    """Hide known cells, fit kgattr and the tf-idf baseline on the rest, score both on the hidden cells.

    Example: kgattr evaluate data/sample.jsonl --min-count 50
    """
    from .catalog import read_catalog
    from .evaluation import run_benchmark

    result = run_benchmark(read_catalog(catalog), mask_rate=mask_rate, seed=seed, min_count=min_count,
                           epochs=epochs, methods=tuple(methods.split(",")), progress=_progress())
    for name, r in result["methods"].items():
        typer.echo(f"{name:10s} micro {r['micro']:.4f}  macro {r['macro']:.4f}  coverage {r['coverage']:.4f}  "
                   f"fit {r['fit_s']:.0f}s  predict {r['predict_s']:.0f}s")
    if report:
        from .catalog import atomic_write

        atomic_write(report, lambda tmp: tmp.write_text(json.dumps(result, indent=1)))


def main() -> None:
    from .exceptions import KgattrError

    import os

    logging.basicConfig(level=os.environ.get("KGATTR_LOG", "WARNING").upper(),
                        format="%(asctime)s %(name)s: %(message)s")
    try:
        app()
    except KgattrError as e:
        typer.echo(f"kgattr: error: {e}", err=True)
        sys.exit(2)
