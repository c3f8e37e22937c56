"""The BERT token classifier behind ``kgattr extract``: training on distant supervision, decoding, persistence."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..io.schedule import Patience, epoch_budget
from ..text.weights import default_text_model, load_encoder
from .extraction import (FIELDS, TAGGER_KIND, Lexicon, Span, check_target, decode_tags, held_out, merge_spans,
                         tag_spans, token_tags, window_covers, word_bounds)

log = logging.getLogger(__name__)

FORMAT = 1
# with ``epochs=None``: a share of the titles held out to measure the loss after each epoch, and optimiser updates
# the epochs aim at (1,500 Myntra products, 157 batches an epoch, get up to 3; 1,500 electronics parts, 66, up
# to 5; 20,000 sampled windows, 1)
HELDOUT_SHARE = 0.1
UPDATES = 320
MAX_EPOCHS = 6
PATIENCE = 1


def _load_encoder(path: str):
    tokenizer, model = load_encoder(path)
    return tokenizer, model.float()                  # fp32 to train, whatever the checkpoint's dtype


def _tagger(encoder, num_attributes: int, dropout: float = 0.1):
    """Encoder, then one 3-way (O, B, I) linear head per attribute: logits (batch, tokens, attributes, 3)."""
    import torch
    from torch import nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(encoder.config.hidden_size, 3 * num_attributes)
            # start from the prior (almost every token is O for almost every attribute): the first updates then
            # go to the rare B and I tokens, not to learning that O is common
            with torch.no_grad():
                self.head.bias.copy_(torch.log(torch.tensor([0.98, 0.01, 0.01])).repeat(num_attributes))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.head(self.dropout(hidden)).unflatten(-1, (num_attributes, 3))

    return Tagger()


class Extractor:
    """Reads attribute values out of titles and descriptions with a fine-tuned BERT token classifier.

    Texts longer than ``max_length`` tokens are read in overlapping windows; a value cut by a window's
    edge is tagged I where it continues, and spans of one attribute that overlap across windows are merged.

    Args:
        text_model: local Hugging Face encoder directory (None: the shipped all-MiniLM-L6-v2).
        max_length: tokens per window.
        stride: tokens shared by consecutive windows of one text.
        epochs: passes over the windows (None: until the loss on held-out titles no longer falls, within a budget
            of optimiser updates, :data:`UPDATES`; the weights of its lowest are kept).
        batch_size, lr: optimisation (the head learns at ten times ``lr``).
        max_windows: training windows that hold a tagged span, sampled down to this many (None: all).
        negative_share: windows without any span added, as a share of those with one.
        positive_weight: loss weight of the B and I tags against O (few tokens of a window state an attribute).
        min_spans: attributes tagged fewer times in the catalog are not learned (1: every attribute tagged).
        lora: LoRA rank (0: fine-tune the whole encoder; else train rank-``lora`` adapters on the attention
            projections with peft, merged into the weights when saved).
        threshold: the least confidence of a span returned.
        device: torch device (None: CUDA when present, else CPU).
        seed: for sampling, shuffling and initialisation.
        progress: show progress bars.
    """

    def __init__(self, *, text_model: str | None = None, max_length: int = 64, stride: int = 16,
                 epochs: int | None = None, batch_size: int = 32, lr: float = 1e-4, max_windows: int | None = 20_000,
                 negative_share: float = 0.2, positive_weight: float = 3.0, min_spans: int = 1, lora: int = 0,
                 threshold: float = 0.5, device: str | None = None, seed: int = 0, progress: bool = False):
        self.text_model = text_model
        self.max_length = max_length
        self.stride = stride
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_windows = max_windows
        self.negative_share = negative_share
        self.positive_weight = positive_weight
        self.min_spans = min_spans
        self.lora = lora
        self.threshold = threshold
        self.device = device
        self.seed = seed
        self.progress = progress

    PARAMS = ("text_model", "max_length", "stride", "epochs", "batch_size", "lr", "max_windows", "negative_share",
              "positive_weight", "min_spans", "lora", "threshold", "seed")

    def __repr__(self) -> str:
        return f"Extractor(max_length={self.max_length}, lora={self.lora})"

    def _device(self):
        import torch

        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _windows(self, texts: list[str]):
        """Token windows of ``texts``: (input ids, character offsets, text index) per window."""
        enc = self.tokenizer_(texts, truncation=True, max_length=self.max_length, stride=self.stride,
                              return_overflowing_tokens=True, return_offsets_mapping=True)
        return enc["input_ids"], enc["offset_mapping"], enc["overflow_to_sample_mapping"]

    def fit(self, products, ontology=None, heldout=None) -> "Extractor":
        """Tag each product's own known values in its text and fine-tune on those tags.

        Args:
            heldout: products whose loss decides the epochs (with ``epochs=None``; None: a share
                :data:`HELDOUT_SHARE` of the titles of ``products``, held out of training).
        """
        import torch

        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        products = list(products)
        if self.epochs is None and heldout is None:
            products, heldout = held_out(products, HELDOUT_SHARE, self.seed)
        self.lexicon_ = Lexicon.from_catalog(products, ontology)
        texts, spans = _tagged_texts(products)
        counts: dict[str, int] = {}
        for found in spans:
            for _, _, a in found:
                counts[a] = counts.get(a, 0) + 1
        self.attributes_ = sorted(a for a, c in counts.items() if c >= self.min_spans)
        if not self.attributes_:
            raise ValueError(f"no attribute's values are stated in the text at least {self.min_spans} times")
        self.tokenizer_, encoder = _load_encoder(self.text_model or default_text_model())
        ids, tags = self._examples(texts, spans, rng, self.max_windows)
        check = self._examples(*_tagged_texts(heldout or []), rng, len(ids) // 4) if self.epochs is None else None
        self.history_ = self._train(encoder, ids, tags, rng, check)
        self.spans_tagged_ = counts
        return self

    def _examples(self, texts: list[str], spans: list, rng, most: int | None) -> tuple[list, list[np.ndarray]]:
        """(token ids, (tokens, attributes) int8 BIO tags) of windows of ``texts``: up to ``most`` that hold one of
        their ``spans`` (of learned attributes), and a share :attr:`negative_share` of as many without."""
        aindex = {a: i for i, a in enumerate(self.attributes_)}
        spans = [[s for s in found if s[2] in aindex] for found in spans]
        ids, offsets, owner = self._windows(texts) if texts else ([], [], [])
        positive = np.array([window_covers(off, spans[t]) for off, t in zip(offsets, owner)], dtype=bool)
        pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
        if most is not None and len(pos) > most:
            pos = rng.choice(pos, most, replace=False)
        neg = rng.choice(neg, min(len(neg), int(round(self.negative_share * len(pos)))), replace=False)
        chosen = np.concatenate([pos, neg])
        log.info("extractor: %d attributes, %d windows with spans (%d sampled) and %d without",
                 len(self.attributes_), int(positive.sum()), len(pos), len(neg))
        return [ids[i] for i in chosen], [token_tags(offsets[i], spans[owner[i]], aindex).astype(np.int8)
                                          for i in chosen]                    # -100 fits int8

    def _loss(self, model, ids, tags, batch, weight, device):
        """Mean weighted tag cross-entropy of windows ``batch``."""
        import torch

        input_ids, mask = self._pad([ids[i] for i in batch], device)
        target = torch.full((*input_ids.shape, len(self.attributes_)), -100, dtype=torch.long)
        for row, i in enumerate(batch):
            target[row, :len(tags[i])] = torch.from_numpy(tags[i])
        logits = model(input_ids, mask)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 3), target.to(device).reshape(-1),
                                                 weight=weight, ignore_index=-100)

    def _train(self, encoder, ids: list[list[int]], tags: list[np.ndarray], rng, check=None) -> list[float]:
        """Fine-tune; ``check``: (ids, tags) of held-out windows whose loss ends training once it no longer falls."""
        import copy

        import torch
        from ..io.progress import bar as progress_bar

        device = self._device()
        encoder.get_input_embeddings().weight.requires_grad_(False)       # a rare word keeps its pretrained vector
        if self.lora:
            from peft import LoraConfig, get_peft_model

            encoder = get_peft_model(encoder, LoraConfig(r=self.lora, lora_alpha=2 * self.lora, lora_dropout=0.1))
        model = _tagger(encoder, len(self.attributes_)).to(device).train()
        head = list(model.head.parameters())
        body = [p for p in model.encoder.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW([{"params": body, "lr": self.lr}, {"params": head, "lr": 10 * self.lr}],
                                      weight_decay=0.01)
        epochs = self.epochs or epoch_budget(len(ids), self.batch_size, updates=UPDATES, min_epochs=1,
                                             max_epochs=MAX_EPOCHS)
        watch = Patience(PATIENCE) if check and check[0] else None
        steps = epochs * -(-len(ids) // self.batch_size)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min(1.0, (s + 1) / max(1, steps // 20)) * max(0.0, 1 - s / steps))
        weight = torch.tensor([1.0, self.positive_weight, self.positive_weight], device=device)
        history = []
        bar = progress_bar(total=steps, desc="training extractor", unit="batch", enabled=self.progress)
        for _ in range(epochs):
            total, seen = 0.0, 0
            model.train()
            for batch in self._batches(ids, rng.permutation(len(ids))):
                loss = self._loss(model, ids, tags, batch, weight, device)
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(body + head, 1.0)    # the usual guard of BERT fine-tuning against one wild step
                optimiser.step()
                schedule.step()
                total, seen = total + loss.item() * len(batch), seen + len(batch)
                bar.update(1)
            history.append(total / max(1, seen))
            if watch is not None:
                model.eval()
                with torch.inference_mode():
                    held = [self._loss(model, *check, b, weight, device).item() * len(b)
                            for b in self._batches(check[0], np.arange(len(check[0])))]
                log.info("extractor: epoch %d held-out loss %.4f", len(history), sum(held) / len(check[0]))
                if watch.update(sum(held) / len(check[0]), lambda: copy.deepcopy(model.state_dict())):
                    break
        bar.close()
        if watch is not None:
            model.load_state_dict(watch.best)
            self.heldout_losses_ = watch.losses
        if self.lora:
            model.encoder = model.encoder.merge_and_unload()
        self.model_ = model.eval().to("cpu") if device.type != "cpu" else model.eval()
        return history

    def _batches(self, ids, order: np.ndarray):
        """Batches of similar lengths (less padding), in shuffled order of chunks."""
        chunk = self.batch_size * 50
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            part = part[np.argsort([len(ids[i]) for i in part], kind="stable")]
            for b in range(0, len(part), self.batch_size):
                yield part[b:b + self.batch_size]

    def _pad(self, rows: list[list[int]], device):
        import torch

        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer_.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return input_ids.to(device), mask.to(device)

    # ---- extraction ------------------------------------------------------------------------------
    def extract(self, products, batch_size: int = 64) -> list[list[Span]]:
        """The spans of each product's title and description (a list per product, in text order)."""
        import torch
        from ..io.progress import bar as progress_bar

        self._check_fitted()
        products = list(products)
        where, texts = [], []
        for n, p in enumerate(products):
            for field in FIELDS:
                if getattr(p, field):
                    where.append((n, field))
                    texts.append(getattr(p, field))
        if not texts:
            return [[] for _ in products]
        device = self._device()
        model = self.model_.to(device).eval()
        ids, offsets, owner = self._windows(texts)
        found: dict[tuple[int, str], list[list]] = {}
        order = np.argsort([len(x) for x in ids], kind="stable")
        bar = progress_bar(total=len(ids), desc="extracting", unit="window", enabled=self.progress)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                input_ids, mask = self._pad([ids[i] for i in batch], device)
                probs = torch.softmax(model(input_ids, mask).float(), -1).cpu().numpy()   # (b, t, A, 3)
                for row, w in enumerate(batch):
                    for a, s, e, conf in decode_tags(probs[row, :len(ids[w])], offsets[w]):
                        found.setdefault((owner[w], a), []).append([s, e, conf])
                bar.update(len(batch))
        bar.close()
        self.model_ = model.to("cpu") if device.type != "cpu" else model
        out: list[list[Span]] = [[] for _ in products]
        for (t, a), parts in found.items():
            n, field = where[t]
            text = texts[t]
            for s, e, conf in merge_spans(parts):
                s, e = word_bounds(text, s, e)
                if conf < self.threshold or e <= s:
                    continue
                surface = text[s:e]
                attribute = self.attributes_[a]
                value = self.lexicon_.lookup(attribute, surface)
                out[n].append(Span(attribute, value or surface, value is not None, field, s, e, surface,
                                   round(float(conf), 4)))
        for spans in out:
            spans.sort(key=lambda x: (FIELDS.index(x.field), x.start, x.attribute))
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from ..exceptions import NotFittedError

            raise NotFittedError("this Extractor is not fitted: call fit(...) or load(...) first")

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write ``config.json``, ``lexicon.json``, ``head.safetensors`` and the encoder (safetensors + tokenizer),
        as one folder that replaces ``path`` whole (see :func:`~kgattr.extract.extraction.check_target`)."""
        from safetensors.torch import save_file

        from ..io.outputs import staged_folder

        self._check_fitted()
        path = Path(path)
        check_target(path)
        with staged_folder(path) as tmp:
            self.model_.encoder.save_pretrained(tmp / "encoder", safe_serialization=True)
            self.tokenizer_.save_pretrained(tmp / "encoder")
            save_file({k: v.contiguous() for k, v in self.model_.head.state_dict().items()}, tmp / "head.safetensors")
            (tmp / "lexicon.json").write_text(json.dumps(self.lexicon_.values))
            config = {"format": FORMAT, "kind": TAGGER_KIND,
                      "params": {k: getattr(self, k) for k in self.PARAMS}, "attributes": self.attributes_,
                      "spans_tagged": self.spans_tagged_, "history": self.history_}
            (tmp / "config.json").write_text(json.dumps(config, indent=1))

    @classmethod
    def load(cls, path, *, device: str | None = None) -> "Extractor":
        from safetensors.torch import load_file

        from ..exceptions import KgattrError

        path = Path(path)
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise KgattrError(f"{path}: not an extractor directory ({exc})") from exc
        if config.get("kind") != TAGGER_KIND or config.get("format") != FORMAT:
            raise KgattrError(f"{path / 'config.json'}: not a kgattr extractor of format {FORMAT}")
        self = cls(**config["params"], device=device)
        self.attributes_ = config["attributes"]
        self.spans_tagged_ = config["spans_tagged"]
        self.history_ = config["history"]
        self.lexicon_ = Lexicon(json.loads((path / "lexicon.json").read_text()))
        self.tokenizer_, encoder = _load_encoder(str(path / "encoder"))
        self.model_ = _tagger(encoder, len(self.attributes_))
        self.model_.head.load_state_dict(load_file(path / "head.safetensors"))
        self.model_.eval()
        return self


def _tagged_texts(products) -> tuple[list[str], list]:
    """The non-empty titles and descriptions of ``products``, and the spans of each product's values in them."""
    texts, spans = [], []
    for p in products:
        for field in FIELDS:
            text = getattr(p, field)
            if text:
                texts.append(text)
                spans.append(tag_spans(text, p.attributes))
    return texts, spans
