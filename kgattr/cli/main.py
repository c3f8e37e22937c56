"""The kgattr command line: each command parses, calls one library function, formats the result.

Exit codes: 0 success; 2 bad input, usage, file or environment (one line ``kgattr: error: PLACE: WHAT``; see
:mod:`kgattr.cli.base`). No output may be an input; checked before any work starts (:mod:`kgattr.io.outputs`).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .base import (CatalogFormat, KgattrGroup, OutputFormat, console as make_console, count, emit,
                   format_of_catalog, format_option, natural, output_format, progress as _progress, root_options,
                   share, terminate_on_sigterm, within)
from ..bench.growth import SIZES
from ..io.outputs import claim
from .bench import split, score, evaluate
from .encode import Backend, EncoderOpt, RayAddressOpt, encode
from .extract import extract_app
from .model import model_app
from .rules import completeness, rules_app

app = typer.Typer(help="Complete missing product attributes: ontology + graph + GNN/BERT fusion + FAISS + rules.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=KgattrGroup)
app.callback()(root_options)
ontology_app = typer.Typer(help="Build and inspect the product ontology.", no_args_is_help=True)
graph_app = typer.Typer(help="Build and export the co-occurrence graph.", no_args_is_help=True)
app.add_typer(ontology_app, name="ontology")
app.add_typer(graph_app, name="graph")
app.add_typer(rules_app, name="rules")
app.add_typer(extract_app, name="extract")
app.add_typer(model_app, name="model")
for _group in (app, *(g.typer_instance for g in app.registered_groups)):
    _group.rich_markup_mode = None             # plain help: "[default: ...]" in a help text stays as written

ModelOpt = typer.Option(..., "--model", "-m", help="Model directory written by `kgattr train`.")
OntologyOpt = typer.Option(None, "--ontology", help="Ontology Turtle file(s) whose rules apply instead of the model's "
                                                   "(repeatable) [default: the files it was trained with, read afresh].")

ReviewedOpt = typer.Option(None, "--reviewed", help="Review store of `kgattr serve`: accepted and edited values count as known, rejected ones are never proposed again for their products (the catalog file is not changed).")


@app.command()
def train(catalog: Path = typer.Argument(..., help="Catalog (.jsonl[.gz], .csv, .parquet)."),
          out: Path = typer.Option(..., "--out", "-o", help="Model directory to write."),
          ontology: Optional[Path] = typer.Option(None, "--ontology", help="Expert ontology: complete/impute read it afresh, so rule edits apply without training again; induced from the catalog if absent."),
          text_model: Optional[Path] = typer.Option(None, "--text-model", help="Local Hugging Face model directory."),
          epochs: Optional[int] = typer.Option(None, callback=count, help="Training epochs of the GNN [default: until the held-out loss stops falling]."),
          max_length: int = typer.Option(48, callback=count, help="BERT tokens per product."),
          extractor: Optional[Path] = typer.Option(None, "--extractor", help="Text extractor (`kgattr extract train`) whose spans become a score of the mix and evidence."),
          encoder: Backend = EncoderOpt,
          reviewed: Optional[Path] = ReviewedOpt,
          seed: int = typer.Option(0, help="Random seed."),
          catalog_format: CatalogFormat = format_of_catalog(),
          jobs: int = typer.Option(0, "--jobs", "-j", callback=natural, help="Processes that fit the linear scorers (0: one per core); the model is the same."),
          ray: bool = typer.Option(False, "--ray", help="Encode the text and fit the linear scorers on a Ray cluster (pip install 'kgattr[ray]'); the model is the same."),
          ray_address: Optional[str] = RayAddressOpt):
    """Learn ontology, graph, text features and the GNN from a catalog.

    Example: kgattr train data/sample.jsonl --out models/sample
    """
    from ..completer import AttributeCompleter
    from ..engine.modelfiles import check_target
    from ..engine.reviewed import Reviewed
    from ..io.catalog import read_catalog
    from ..ontology.files import load_ontology

    check_target(out)                          # before training, not after
    reviews = Reviewed.read(reviewed) if reviewed else None
    cat = read_catalog(catalog, format=catalog_format)
    onto = load_ontology(ontology) if ontology else None
    completer = AttributeCompleter(text_model=str(text_model) if text_model else None,
                                   max_length=max_length, seed=seed, progress=_progress(), text_backend=encoder,
                                   extractor=str(extractor.resolve()) if extractor else None, n_jobs=jobs or -1,
                                   **({"epochs": epochs} if epochs else {}))
    cluster = None
    if ray or ray_address:
        from ..engine.distributed import RayCluster

        cluster = RayCluster(address=ray_address, progress=_progress())
    completer.fit(cat, onto, reviewed=reviews, cluster=cluster)
    completer.save(out)
    learnt = f"; reviews: {sum(map(len, reviews.confirmed.values()))} values confirmed, " \
        f"{len(reviews.triples())} refused" if reviews else ""
    typer.echo(f"trained on {len(cat)} products, {len(completer.targets_)} attributes; "
               f"{len(completer.cells_['product'])} gaps scored{learnt} -> {out}")


def _table(result) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = make_console()
    for pc in result:
        known = ", ".join(f"{k}={v}" for k, v in pc.known.items())
        if not pc.completions:
            console.print(f"[bold]{escape(pc.sku)}[/bold]: no gaps  known: {escape(known)}")
            continue
        console.print(f"[bold]{escape(pc.sku)}[/bold]  known: {escape(known)}")
        table = Table("attribute", "value", "confidence", "evidence", "alternatives / rejected")
        for c in sorted(pc.completions, key=lambda c: -c.confidence):
            ev = c.evidence or {}
            parts = []
            if ev.get("similar_skus"):
                parts.append("similar: " + ", ".join(f"{s['sku']}={s['value']}" for s in ev["similar_skus"][:3]))
            if ev.get("listed_near"):
                parts.append("listed near: " + ", ".join(f"{s['sku']}={s['value']}" for s in ev["listed_near"][:3]))
            if ev.get("graph"):
                parts.append("with: " + ", ".join(f"{g['attribute']}={g['value']}" for g in ev["graph"][:2]))
            if ev.get("extracted"):
                x = ev["extracted"]
                parts.append(f"read in the {x['field']} ({x['confidence']:.2f}): {ev['text']!r}")
            elif ev.get("text"):
                parts.append(f"text: {ev['text']!r}")
            other = [f"{a['value']} {a['confidence']:.2f}" for a in c.alternatives]
            other += [f"✗ {r['value']} ({r['rule']})" for r in c.rejected]
            table.add_row(c.attribute, c.value or "— abstain", f"{c.confidence:.2f}", "\n".join(parts), "\n".join(other))
        console.print(table)
        for c in pc.completions:
            for r in c.checked:
                console.print(f"  {c.attribute} = {c.value}: {'✓' if r['passed'] else '✗'} {r['rule']}: {r['says']}",
                              markup=False, highlight=False)


@app.command()
def complete(sku: list[str] = typer.Option(..., "--sku", help="SKU to complete (repeatable)."),
             model: Path = ModelOpt,
             catalog: Optional[Path] = typer.Option(None, "--catalog", help="Catalog holding new or changed products."),
             catalog_format: CatalogFormat = format_of_catalog(),
             ontology: Optional[list[Path]] = OntologyOpt,
             explain: bool = typer.Option(False, "--explain", help="Show every rule checked for each value."),
             as_json: bool = typer.Option(False, "--json", help="JSON output: a list of products."),
             fmt: Optional[OutputFormat] = format_option()):
    """What is missing for a product, and what it should be, with confidence and evidence.

    Example: kgattr complete --model models/sample --sku S00007
    """
    from ..completer import AttributeCompleter
    from ..io.catalog import read_catalog

    completer = AttributeCompleter.load(model, ontology=ontology)
    result = completer.complete(list(sku), read_catalog(catalog, format=catalog_format) if catalog else None,
                                 explain=explain)
    fmt = output_format(fmt, as_json)
    if fmt == "table":
        _table(result)
    elif fmt == "csv":                         # one row a gap
        emit([{"sku": pc.sku, **c.to_json()} for pc in result for c in pc.completions], fmt)
    else:
        emit([r.to_json() for r in result], fmt)


@app.command()
def impute(catalog: Path = typer.Argument(..., help="Catalog whose gaps to fill (never modified)."),
           model: Path = ModelOpt,
           output: Path = typer.Option(..., "--output", "-o", help="Completed catalog, same format as the input."),
           cells: Optional[Path] = typer.Option(None, "--cells", help="Sidecar of filled cells (default: OUTPUT.cells.jsonl)."),
           review: Optional[Path] = typer.Option(None, "--review", help="Gaps left empty, with their best guess (default: OUTPUT.review.jsonl)."),
           min_confidence: Optional[float] = typer.Option(None, "--min-confidence", callback=share,
                                                          help="Fill only cells at least this confident [default: 0.5]."),
           precision: Optional[float] = typer.Option(None, "--precision", callback=within(0, 1, open_low=True),
                                                     help="Instead: fill an attribute's cells only where its estimated precision is at least this."),
           ontology: Optional[list[Path]] = OntologyOpt, catalog_format: CatalogFormat = format_of_catalog(),
           ray: bool = typer.Option(False, "--ray", help="Encode and score on a Ray cluster (pip install 'kgattr[ray]'); the outputs are the same."),
           ray_address: Optional[str] = RayAddressOpt,
           reviewed: Optional[Path] = ReviewedOpt):
    """Fill every gap of a catalog; original values are never changed.

    Example: kgattr impute data/sample.jsonl --model models/sample -o out/sample.jsonl --precision 0.95
    """
    from ..completer import AttributeCompleter
    from ..engine.imputation import impute_file
    from ..engine.reviewed import Reviewed
    from ..io.outputs import check_outputs

    if precision is not None and min_confidence is not None:
        raise typer.BadParameter("give --precision or --min-confidence, not both", param_hint="--precision")
    min_confidence = 0.5 if min_confidence is None else min_confidence
    check_outputs([("--output", output)])              # a directory has no name to put the sidecars beside
    cells = cells or output.with_name(output.name + ".cells.jsonl")
    review = review or output.with_name(output.name + ".review.jsonl")
    completer = AttributeCompleter.load(model, ontology=ontology)
    with claim([("--output", output), ("--cells", cells), ("--review", review)],
               [("the input catalog", catalog), ("--reviewed", reviewed), *_model_inputs(model, completer)]):
        if reviewed and (ray or ray_address):
            raise typer.BadParameter("a Ray run does not read reviews yet: impute with --reviewed without --ray", param_hint="--reviewed")
        completer.progress = _progress()
        done = impute_file(completer, catalog, output, cells, review, min_confidence=min_confidence,
                           precision=precision, catalog_format=catalog_format,
                           reviewed=Reviewed.read(reviewed) if reviewed else None,
                           impute=_on_ray(model, ray_address) if ray or ray_address else None)
    typer.echo(f"{done.filled} cells filled in {done.products} products -> {output} (cells: {cells}); "
               f"{done.review} left for review -> {review}")


def _on_ray(model: Path, address: str | None):
    """``impute(catalog, evidence_floor)`` on a Ray cluster's actors, started once (see
    :class:`~kgattr.engine.distributed.RayImputer`)."""
    from ..completer import AttributeCompleter
    from ..engine.distributed import RayImputer

    imputer = RayImputer(model, AttributeCompleter.load, address=address, progress=_progress())
    return lambda part, floor: imputer([part], floor)[0]


def _model_inputs(model: Path, completer) -> list[tuple[str, Path]]:
    """What a loaded model reads besides its directory: its extractor and ontology files."""
    extractor = Path(completer.extractor) if completer.extractor else None
    return [("the model directory", model), ("the extractor", extractor),
            *(("the ontology", Path(f)) for f in completer.ontology_.sources)]


@ontology_app.command("induce")
def ontology_induce(catalog: Path = typer.Argument(..., help="Catalog to read."),
                    output: Path = typer.Option(..., "--output", "-o", help="Turtle file to write."),
                    min_support: int = typer.Option(1, callback=count, help="Times a value must be seen in a category to be allowed."),
                    max_unseen: float = typer.Option(0.005, callback=share, help="Write an allowed set only where the estimated chance of an unseen value is at most this."),
                    catalog_format: CatalogFormat = format_of_catalog()):
    """Bootstrap an ontology (taxonomy, attributes, allowed values as SHACL) for experts to edit.

    Example: kgattr ontology induce data/sample.jsonl -o ontology/sample.ttl
    """
    from ..io.catalog import read_catalog
    from ..ontology.files import save_ontology
    from ..ontology.mining import induce_ontology

    with claim([("--output", output)], [("the input catalog", catalog)]):
        onto = induce_ontology(read_catalog(catalog, format=catalog_format), min_support=min_support, max_unseen=max_unseen)
        save_ontology(onto, output, source=catalog.name)
    differs = sum(1 for s in onto.shapes if any(p.disjoint for p in s.properties.values()))
    typer.echo(f"{len(onto.categories)} categories, {len(onto.attributes)} attributes, "
               f"{len(onto.shapes) - differs} category shapes, {differs} pairs of attributes that differ -> {output}")
    for name, others in sorted(onto.alt_labels.items())[:10]:
        typer.echo(f"  {name!r} may be the same attribute as {', '.join(map(repr, sorted(others)))} (skos:altLabel)")
    if len(onto.alt_labels) > 10:
        typer.echo(f"  … and {len(onto.alt_labels) - 10} more names with variants (skos:altLabel in {output})")


@graph_app.command("build")
def graph_build(catalog: Path = typer.Argument(..., help="Catalog to read."),
                output: Path = typer.Option(..., "--output", "-o", help="Directory to write."),
                graphml: bool = typer.Option(False, "--graphml", help="Also write graph.graphml (networkx)."),
                catalog_format: CatalogFormat = format_of_catalog()):
    """Build the product/category/value co-occurrence graph.

    Example: kgattr graph build data/sample.jsonl -o graphs/sample --graphml
    """
    from ..engine.graph import build_graph
    from ..io.catalog import read_catalog

    names = ["nodes.json", "edges.safetensors"] + (["graph.graphml"] if graphml else [])
    with claim([("--output", output / name) for name in names], [("the input catalog", catalog)]):
        g = build_graph(read_catalog(catalog, format=catalog_format))
        g.save(output, graphml=graphml)
    typer.echo(f"{len(g.skus)} products, {len(g.categories)} categories, {len(g.values)} values, "
               f"{g.has_value.shape[1]} product-value and {g.cooccurs.shape[1] // 2} value-value edges -> {output}")


@app.command()
def sample(output: Path = typer.Option(..., "--output", "-o", help="Catalog file to write."),
           products: int = typer.Option(400, "--products", "--size", callback=count, help="Number of products."),
           kind: str = typer.Option("fashion", help="fashion (closed vocabularies) or electronics (values with units in varied forms, model numbers, typos)."),
           source: Optional[Path] = typer.Option(None, "--from", help="Instead: draw a real catalog's products again under new SKUs with perturbed text (to measure cost at larger sizes; accuracy on it means nothing)."),
           seed: int = typer.Option(0, callback=natural, help="Random seed.")):
    """Write a synthetic catalog: the demo's fashion one, a technical electronics one, or one drawn from a real one.

    Example: kgattr sample --kind electronics -o out/electronics.jsonl
    """
    from ..io.catalog import Catalog, read_catalog
    from ..io.writers import streams, write_catalog, write_jsonl
    from ..io.datasets import SAMPLES

    if kind not in SAMPLES:
        raise typer.BadParameter(f"unknown kind {kind!r} (choose from {', '.join(SAMPLES)})", param_hint="--kind")
    with claim([("--output", output)], [("the input catalog", source)]):
        if source is None:
            write_catalog(SAMPLES[kind](products, seed=seed), output)
        else:
            from ..io.scale import resample

            drawn = resample(read_catalog(source), products, seed)
            if streams(output):
                write_jsonl((p.to_json() for p in drawn), output)
            else:
                write_catalog(Catalog(drawn, str(source)), output)
    typer.echo(f"{products} {'products drawn from ' + str(source) if source else kind + ' products'} -> {output}")


app.command()(split)


app.command()(score)


app.command()(evaluate)


app.command("completeness")(completeness)
app.command("encode")(encode)


@app.command("bench-scale")
def bench_scale(source: Path = typer.Option(..., "--from", help="Real catalog whose products are drawn again at each size."),
                report: Path = typer.Option(..., "--report", help="Directory for growth.json, growth.md, growth.png (and, while running, work/)."),
                size: list[int] = typer.Option(list(SIZES), "--size", callback=lambda sizes: [count(n) for n in sizes], help="Catalog size to measure (repeatable)."),
                max_memory: float = typer.Option(6.0, "--max-memory", callback=within(0, None, open_low=True), help="GiB a stage may hold: a stage predicted to need more is not run, one that takes more is stopped."),
                cold: bool = typer.Option(True, "--cold/--no-cold", help="Also train with an empty text cache."),
                cache: Optional[Path] = typer.Option(None, "--cache", help="Text cache shared by every size and kept, warm from an earlier run (no cold training then) [default: an empty one a size]."),
                seed: int = typer.Option(0, callback=natural, help="Random seed of the generated catalogs."),
                encoder: Backend = EncoderOpt):
    """Measure train, impute and complete at growing catalog sizes: seconds, peak memory, growth exponents.

    Example: kgattr bench-scale --from data/sample.jsonl --size 200 --size 400 --no-cold --report out/bench-scale
    """
    from ..bench.growth import GB, run

    with claim([("--report", report / "growth.json"), ("--report", report / "growth.md"),
                ("--report", report / "growth.png")], [("the input catalog", source)]):
        result = run(source, report, sizes=size, seed=seed, max_memory=max_memory * GB, cold=cold, cache=cache,
                     encoder=encoder, log=lambda line: typer.echo(line, err=True))
    for stage, g in result["growth"].items():
        typer.echo(f"{stage}: exponent {g['seconds']} (seconds), {g['peak_bytes']} (memory)")
    typer.echo(f"-> {report / 'growth.md'}")


@app.command()
def serve(model: Path = ModelOpt,
          catalog: Optional[Path] = typer.Option(None, "--catalog", help="Catalog to review [default: the model's training catalog]."),
          ontology: Optional[list[Path]] = typer.Option(None, "--ontology", help="Rule files to apply and edit, new rules going to the last [default: those the model was trained with]."),
          db: Optional[Path] = typer.Option(None, "--db", help="Review store (SQLite) [default: MODEL.review.sqlite beside the model]."),
          host: str = typer.Option("127.0.0.1", help="Address to listen on (any other than 127.0.0.1 exposes the server to the network)."),
          port: int = typer.Option(8000, callback=within(1, 65535), help="Port to listen on."),
          token_file: Optional[Path] = typer.Option(None, "--token-file", help="File holding the write token [default: $KGATTR_TOKEN, else a fresh one printed at start]."),
          auto_fill: float = typer.Option(0.9, "--auto-fill", callback=share, help="Cells at least this confident are filled without review."),
          audit_share: float = typer.Option(0.05, "--audit-share", callback=share, help="Share of auto-filled cells sent to the queue as an audit sample.")):
    """Review workbench in the browser (/queue, /rules, /completeness) and HTTP API (/docs) over a model.

    Example: kgattr serve --model models/sample --ontology ontology/sample.ttl --token-file token.txt
    """
    from ..serve import serve as run

    run(model, catalog=catalog, ontology=ontology or None, db=db, host=host, port=port, token_file=token_file,
        auto_fill=auto_fill, audit_share=audit_share)


def main() -> None:
    level = os.environ.get("KGATTR_LOG", "WARNING").upper()
    if not isinstance(logging.getLevelName(level), int):
        typer.echo(f"kgattr: error: KGATTR_LOG: unknown level {level!r} (DEBUG, INFO, WARNING, ERROR)", err=True)
        sys.exit(2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s")
    terminate_on_sigterm()
    app()
