"""``kgattr encode``: fill the text-embedding cache ahead of ``train`` or ``impute``, here or on a Ray cluster;
and the options that choose how text is encoded."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from ..io.outputs import claim
from ..text.weights import BACKENDS
from .base import CatalogFormat, count, format_of_catalog, progress

Backend = Literal[BACKENDS]                              # the type of EncoderOpt
EncoderOpt = typer.Option("torch", "--encoder", help="How BERT runs: torch, onnx (ONNX Runtime), onnx-int8 (int8 matrix products, 2-3x faster on a CPU; pip install 'kgattr[onnx]') or static (token vectors distilled from it once, no transformer per text; pip install 'kgattr[static]').")
RayAddressOpt = typer.Option(None, "--ray-address", help="Ray cluster, HOST:PORT or ray://HOST:PORT, or local for a new one on this machine (implies --ray) [default: $RAY_ADDRESS, else one started here by `ray start --head`, else a new local one].")


def encode(catalog: Path = typer.Argument(..., help="Catalog whose texts to encode."),
           model: Optional[Path] = typer.Option(None, "--model", "-m", help="Encode as this model does (its text model, length and --encoder)."),
           text_model: Optional[Path] = typer.Option(None, "--text-model", help="Local Hugging Face model directory."),
           max_length: int = typer.Option(48, callback=count, help="BERT tokens per product."),
           encoder: Backend = EncoderOpt,
           ray: bool = typer.Option(False, "--ray", help="Encode on a Ray cluster (pip install 'kgattr[ray]'); the vectors are the same."),
           ray_address: Optional[str] = RayAddressOpt,
           workers: Optional[int] = typer.Option(None, callback=count, help="Ray actors [default: one per CPU of the cluster]."),
           catalog_format: CatalogFormat = format_of_catalog()):
    """Encode the texts of a catalog into the text cache ($KGATTR_CACHE), so that train and impute find them.

    Example: kgattr encode catalog.jsonl.gz --encoder onnx-int8 --ray
    """
    from ..io.catalog import read_catalog
    from ..text.encoder import TextEncoder

    with claim([], [("the input catalog", catalog), ("the model directory", model), ("the text model", text_model)]):
        cat = read_catalog(catalog, format=catalog_format)
        if model:
            from ..completer import AttributeCompleter

            enc = AttributeCompleter.load(model).text_encoder()
        else:
            enc = TextEncoder(str(text_model) if text_model else None, max_length=max_length, backend=encoder)
        if ray or ray_address:
            from ..engine.distributed import encoder_on_ray

            compute = encoder_on_ray(enc, address=ray_address, workers=workers, progress=progress())
        else:
            def compute(texts: list[str]):
                return enc.encode_batches(texts, progress())
        texts = list(dict.fromkeys(p.text for p in cat))
        new: list[str] = []
        enc.encode(texts, compute=lambda missing: new.extend(missing) or compute(missing))
    typer.echo(f"{len(texts)} distinct texts, {len(new)} encoded now -> {enc.cache_file}")
