"""Static token vectors distilled from a sentence encoder with model2vec: a text's embedding is the mean of its
tokens' vectors, with no transformer to run at encode time.

Distillation runs the encoder once over every token of its vocabulary, each alone, and keeps the mean-pooled
outputs, (vocabulary, hidden size); PCA rotates them onto their principal axes, keeping every dimension (so
everything downstream sees torch's width), and each token is scaled down by its estimated frequency (SIF weights
from its rank in the vocabulary). The result is written once per model and library version under the cache
folder (``static/``), and read from there afterwards.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from .weights import load_encoder, model_identity

log = logging.getLogger(__name__)

PCA_DIMS = "auto"                  # PCA without cutting: the same width as the encoder, no faster retrieval to buy
SIF_COEFFICIENT = 1e-4             # model2vec's default


def static_runner(path: str, cache_root: Path):
    """(embed, width) of the static model distilled from the encoder at ``path``; see
    :data:`kgattr.text.encoding.Embed`. A text is cut to ``max_length`` word pieces (no [CLS] or [SEP])."""
    from model2vec import StaticModel

    model = StaticModel.from_pretrained(distilled(path, cache_root), normalize=True, force_download=False)

    def embed(texts: list[str], max_length: int) -> np.ndarray:
        vectors = model.encode(texts, max_length=max_length, use_multiprocessing=False)
        return vectors.astype(np.float32, copy=False)         # a text with no known token stays all zeros

    return embed, model.dim


def distilled(path: str, cache_root: Path) -> Path:
    """The folder of the static model distilled from the encoder at ``path``, distilled on first use.

    Keyed by the model's identity, the distillation's settings and model2vec's version. Two processes distilling
    at once take turns; the folder appears whole (:func:`~kgattr.io.outputs.staged_folder`).
    """
    import model2vec

    from ..io.outputs import locked, staged_folder

    blob = json.dumps([model_identity(path), PCA_DIMS, SIF_COEFFICIENT, model2vec.__version__])
    folder = Path(cache_root) / "static" / hashlib.sha1(blob.encode()).hexdigest()[:16]
    with locked([folder]):
        if not folder.exists():
            log.info("distilling %s into static token vectors at %s", path, folder)
            with staged_folder(folder) as tmp:
                _distil(path).save_pretrained(tmp)
    return folder


def _distil(path: str):
    """model2vec's StaticModel of the encoder at ``path``: (vocabulary, hidden size) float32 vectors."""
    from model2vec.distill import distill_from_model

    tokenizer, encoder = load_encoder(path)          # offline, quiet; model2vec's own loader would show progress
    return distill_from_model(model=encoder, tokenizer=tokenizer, pca_dims=PCA_DIMS,
                              sif_coefficient=SIF_COEFFICIENT, quantize_to="float32")
