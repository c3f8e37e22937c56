"""Running a sentence encoder: PyTorch, ONNX Runtime on an exported copy of it (optionally int8-quantised), or
static token vectors distilled from it.

The transformer backends compute the same function, the mean of the last hidden states over the real tokens,
L2-normalised (:class:`MeanPooled`); ``onnx`` runs it to within float rounding of ``torch``, ``onnx-int8`` with
int8 matrix products (weights quantised per output channel, activations per batch at run time), several times
faster on a CPU and a cosine of about 0.99 to the ``torch`` vectors. The exported copy is written once per model,
backend and library versions under the cache folder (``onnx/``), and read from there afterwards. ``static`` runs
no transformer: a text's vector is the mean of its tokens' distilled vectors (see :mod:`kgattr.text.static`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .static import static_runner
from .weights import check_backend, load_encoder, model_identity


log = logging.getLogger(__name__)

# (input_ids (b, t) int64, attention_mask (b, t) int64) -> (b, hidden size) float32 unit rows
Run = Callable[[np.ndarray, np.ndarray], np.ndarray]
# (texts, max_length in tokens) -> (len(texts), width) float32 unit rows
Embed = Callable[[list[str], int], np.ndarray]


class MeanPooled(torch.nn.Module):
    """An encoder's sentence embedding: (b, t) token ids and mask -> (b, d) mean over the real tokens, unit length."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state   # (b, t, d)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1)


def runner(path: str, backend: str, cache_root: Path) -> tuple[Embed, int]:
    """(embed, width of its vectors) of the encoder at ``path`` on ``backend``; see :data:`Embed`.

    A GPU is used where there is one: CUDA through torch, or onnxruntime's CUDA provider where installed.

    Args:
        cache_root: the cache folder; ONNX backends keep their exported model under ``onnx/`` there, ``static``
            its distilled vectors under ``static/``.
    """
    check_backend(backend)
    if backend == "static":
        return static_runner(path, cache_root)
    if backend == "torch":
        tokenizer, encoder = load_encoder(path)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        pooled = MeanPooled(encoder).to(device).eval()

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return pooled(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)).float().cpu().numpy()

        return tokenised(tokenizer, run), encoder.config.hidden_size
    import onnxruntime as ort
    from transformers import AutoConfig, AutoTokenizer

    file = exported(path, backend, cache_root)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()     # the limit torch honours (OMP_NUM_THREADS, Ray's)
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(file), options, providers=providers)

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return session.run(None, {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)})[0]

    return tokenised(AutoTokenizer.from_pretrained(path), run), AutoConfig.from_pretrained(path).hidden_size


def tokenised(tokenizer, run: Run) -> Embed:
    """:data:`Embed` of a transformer: texts cut to ``max_length`` tokens, padded to the batch's longest, then run."""
    def embed(texts: list[str], max_length: int) -> np.ndarray:
        batch = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
        return run(batch["input_ids"], batch["attention_mask"])

    return embed


def exported(path: str, backend: str, cache_root: Path) -> Path:
    """The ONNX file of the encoder at ``path`` for ``backend``, exported (and quantised) on first use.

    Keyed by the model's identity and the torch and onnxruntime versions (an exporter or quantiser of another
    version may write another graph). Two processes exporting at once take turns; the file appears whole.
    """
    import onnxruntime

    from ..io.outputs import atomic_write, locked

    blob = json.dumps([model_identity(path), backend, torch.__version__, onnxruntime.__version__])
    file = Path(cache_root) / "onnx" / f"{hashlib.sha1(blob.encode()).hexdigest()[:16]}-{backend}.onnx"
    with locked([file]):
        if not file.exists():
            log.info("exporting %s to %s", path, file)
            atomic_write(file, lambda tmp: _export(path, tmp, quantise=backend == "onnx-int8"))
    return file


def _export(path: str, target: Path, quantise: bool) -> None:
    """Write :class:`MeanPooled` over the encoder at ``path`` as ONNX to ``target``, batch and length dynamic."""
    import warnings

    # eager attention: one graph for every mask (sdpa's export takes shortcuts that depend on the example's padding)
    tokenizer, encoder = load_encoder(path, attn_implementation="eager")
    example = tokenizer(["a", "a b c d e f"], padding=True, return_tensors="pt")      # padded: the mask is used
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "embedding": {0: "batch"}}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")                          # the TorchScript exporter's notes on tracing
        plain = Path(tmp) / "model.onnx" if quantise else target
        torch.onnx.export(MeanPooled(encoder).eval(), (example["input_ids"], example["attention_mask"]), str(plain),
                          dynamo=False, input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                          dynamic_axes=axes, opset_version=17)
        if quantise:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # matrix products only: the embedding tables stay float (quantising them costs accuracy, saves no time)
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)                         # its advice to pre-process, on the root logger
            try:
                quantize_dynamic(str(plain), str(target), weight_type=QuantType.QInt8, per_channel=True,
                                 op_types_to_quantize=["MatMul"])
            finally:
                root.setLevel(level)
