"""`kgattr extract ...`: train, run and evaluate the text extractor, as thin commands.

Exit codes: 0 success; 2 bad input (an unreadable catalog, a missing extractor directory, a catalog whose
text states too few known values to learn from, an output that is an input).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..io.outputs import claim
from .base import count, natural, progress, rounded, within

extract_app = typer.Typer(help="Read attribute values out of titles and descriptions (a dictionary, a BERT token "
                               "classifier and copy rules, chosen per attribute).", no_args_is_help=True)


def _extractor(text_model, max_windows, epochs, lora, lora_rank, seed):
    from ..extract.combined import CombinedExtractor
    from ..extract.tagger import Extractor

    tagger = Extractor(text_model=str(text_model) if text_model else None, max_windows=max_windows or None,
                       epochs=epochs, lora=lora_rank if lora else 0, seed=seed, progress=progress())
    return CombinedExtractor(tagger=tagger, seed=seed)


TextModelOpt = typer.Option(None, "--text-model", help="Local Hugging Face encoder directory [default: the shipped "
                                                       "all-MiniLM-L6-v2].")
MaxWindowsOpt = typer.Option(20_000, callback=natural, help="Training windows holding a tagged span, sampled down "
                                                             "to this many (0: all; about 30 a second on 2 CPU cores).")
EpochsOpt = typer.Option(None, callback=count, help="Passes over the sampled windows [default: until the loss on "
                                                    "held-out titles no longer falls, up to ~320 updates].")
LoraOpt = typer.Option(False, "--lora", help="Train LoRA adapters (peft) instead of the whole encoder.")
LoraRankOpt = typer.Option(8, callback=count, help="LoRA rank, with --lora.")
SeedOpt = typer.Option(0, callback=natural, help="Random seed.")
# files `CombinedExtractor.save` writes into its directory (the encoder's tokenizer files vary with the model)
EXTRACTOR_FILES = ("config.json", "lexicon.json", "copier.json", "tagger/config.json", "tagger/lexicon.json",
                   "tagger/head.safetensors", "tagger/encoder/config.json", "tagger/encoder/model.safetensors")


@extract_app.command("train")
def extract_train(catalog: Path = typer.Argument(..., help="Catalog whose known values are tagged in its own text."),
                  out: Path = typer.Option(..., "--out", "-o", help="Extractor directory to write."),
                  ontology: Optional[Path] = typer.Option(None, "--ontology", help="Ontology whose allowed values "
                                                          "extracted forms are also normalised to."),
                  text_model: Optional[Path] = TextModelOpt, max_windows: int = MaxWindowsOpt,
                  epochs: Optional[int] = EpochsOpt, lora: bool = LoraOpt, lora_rank: int = LoraRankOpt,
                  seed: int = SeedOpt):
    """Fine-tune a token classifier on the spans where products' known values occur in their text, learn copy
    rules, and choose per attribute between them and an exact dictionary on held-out titles.

    Example: kgattr extract train data/sample.jsonl --out models/sample-extractor
    """
    from ..exceptions import KgattrError
    from ..extract.extraction import check_target
    from ..io.catalog import read_catalog
    from ..ontology.files import load_ontology

    with claim([("--out", out / name) for name in EXTRACTOR_FILES],
               [("the input catalog", catalog), ("the ontology", ontology), ("the text model", text_model)]):
        check_target(out)                        # before training: the save would refuse it after
        cat = read_catalog(catalog)
        extractor = _extractor(text_model, max_windows, epochs, lora, lora_rank, seed)
        try:
            extractor.fit(cat.products, load_ontology(ontology) if ontology else None)
        except ValueError as e:
            raise KgattrError(f"{catalog}: {e}") from e
        extractor.save(out)
    typer.echo(f"extractor for {len(extractor.orders_)} attributes (and a shared choice) trained on {len(cat)} "
               f"products -> {out}")


@extract_app.command("run")
def extract_run(catalog: Optional[Path] = typer.Argument(None, help="Catalog to read (or give --text)."),
                model: Path = typer.Option(..., "--model", "-m", help="Extractor directory (`kgattr extract train`)."),
                out: Optional[Path] = typer.Option(None, "--out", "-o", help="Spans, one JSON object a line."),
                text: Optional[str] = typer.Option(None, "--text", help="Read this one text (as a title) instead.")):
    """Spans stated in the text: attribute, value (the catalog's spelling, or a new-value suggestion when
    `known` is false), field, start, end, confidence.

    Example: kgattr extract run --model models/sample-extractor --text "Men Navy Blue Slim Fit Cotton Shirt"
    """
    from ..extract.combined import load_extractor
    from ..io.catalog import Product, read_catalog
    from ..io.writers import write_jsonl

    if (catalog is None) == (text is None):
        raise typer.BadParameter("give a CATALOG or --text, not both", param_hint="CATALOG / --text")
    if catalog is not None and out is None:
        raise typer.BadParameter("where to write the spans of a catalog", param_hint="--out")
    with claim([("--out", out)] if out else [], [("the input catalog", catalog), ("the extractor", model)]):
        extractor = load_extractor(model)
        products = read_catalog(catalog).products if catalog else [Product("text", text)]
        records = [{"sku": p.sku, **rounded(s.to_json())} for p, spans in zip(products, extractor.extract(products))
                   for s in spans]
        if out is None:
            for r in records:
                typer.echo(json.dumps(r, ensure_ascii=False))
            return
        write_jsonl(records, out)
    new = sum(not r["known"] for r in records)
    typer.echo(f"{len(records)} spans in {len(products)} products ({new} new-value suggestions) -> {out}")


@extract_app.command("evaluate")
def extract_evaluate(catalog: Path = typer.Argument(..., help="Catalog with known values."),
                     test_rate: float = typer.Option(0.1, callback=within(0, 1, open_low=True, open_high=True),
                                                     help="Share of titles held out (all their variants)."),
                     limit: Optional[int] = typer.Option(None, callback=count, help="Sample this many products first."),
                     text_model: Optional[Path] = TextModelOpt, max_windows: int = MaxWindowsOpt,
                     epochs: Optional[int] = EpochsOpt, lora: bool = LoraOpt, lora_rank: int = LoraRankOpt,
                     seed: int = SeedOpt,
                     model: Optional[Path] = typer.Option(None, "--model", "-m", help="A trained extractor to score on "
                                                          "all of CATALOG (another catalog than its own) instead."),
                     report: Optional[Path] = typer.Option(None, help="Write report.json and report.md here.")):
    """Train on products outside held-out titles; precision, recall, micro and macro F1 over (sku, attribute,
    value) of the held-out products, every attribute counted, for the combined extractor and each member (exact
    dictionary, tagger, copy rules); reading title and description, then titles only.

    Example: kgattr extract evaluate ../shared/data/myntra-fashion-styles/catalog.jsonl.gz --seed 0
    """
    import numpy as np

    from ..extract.combined import CombinedExtractor
    from ..extract.evaluation import evaluate_extraction, markdown
    from ..io.catalog import read_catalog
    from ..io.outputs import write_set

    names = ("report.json", "report.md") if report else ()
    with claim([("--report", report / name) for name in names],
               [("the input catalog", catalog), ("the extractor", model), ("the text model", text_model)]):
        products = read_catalog(catalog).products
        if limit and limit < len(products):
            keep = np.sort(np.random.default_rng(seed).choice(len(products), limit, replace=False))
            products = [products[i] for i in keep]
        extractor = CombinedExtractor.load(model) if model else _extractor(text_model, max_windows, epochs, lora,
                                                                           lora_rank, seed)
        result = evaluate_extraction(products, extractor, test_rate=test_rate, seed=seed)
        text = markdown(result)
        typer.echo(text)
        typer.echo(f"{result['products']['train']} products trained on, {result['products']['test']} scored; "
                   f"train {result['seconds']['train']} s, extract {result['seconds']['extract']} s")
        if report:
            write_set({report / "report.json": lambda tmp: tmp.write_text(json.dumps(result, indent=1)),
                       report / "report.md": lambda tmp: tmp.write_text(text + "\n")})
            typer.echo(f"report -> {report}")
