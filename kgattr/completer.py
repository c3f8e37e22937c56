"""AttributeCompleter: the estimator that wires catalog -> ontology -> graph -> text -> GNN -> FAISS -> rules."""
from __future__ import annotations

import logging

import numpy as np

from .engine.calibration import held_out_calibration
from .engine.completion import CategoryRules, ProductCompletion, completions, precision_thresholds
from .engine.evidence import EvidenceFinder, passage
from .engine.graph import build_graph, category_attributes
from .engine.index import Listings, product_vectors, stored_neighbours, value_profile
from .engine.scoring import live_cells, score_gaps, stored_cells
from .exceptions import NotFittedError, UnknownSKUError
from .io.catalog import Catalog, content_hashes
from .ontology.mining import induce_ontology
from .ontology.ontology import Ontology
from .ontology.rules import RuleSet
from .text.encoder import TextEncoder
from .text.lexical import LexicalFeatures

log = logging.getLogger(__name__)


class AttributeCompleter:
    """Fills missing attribute values of a catalog, with calibrated confidence and evidence.

    Args:
        text_model: local Hugging Face model directory (None: the shipped all-MiniLM-L6-v2).
        max_length: BERT tokens per product (title, then the start of the description).
        hidden_channels: width of the GNN.
        epochs: GNN training epochs (None: until the held-out loss stops falling, within a budget of updates
            that gives a small catalog many epochs and a large one 3; see :mod:`kgattr.engine.crossfit`).
        batch_size, lr: optimisation.
        lexical_lr: learning rate of the tf-idf term embeddings (sparse; each row is updated rarely).
        svm_c: inverse regularisation of the linear text scorer's SVMs.
        mask_rate: share of known values hidden from the graph in each epoch (the training targets).
        neighbours: similar products retrieved per product.
        sequence_window: products either side in SKU order whose values vote (0: none); see
            :class:`~kgattr.engine.index.SequenceIndex`.
        sharpness: temperature of similarity weights; small values let near-duplicates dominate.
        category_weight: retrieval bonus for a neighbour of the same leaf category.
        min_attribute_count: attributes known fewer times are not completed.
        calibration_share: share of known values held out of training, to mix the members' scores and
            calibrate confidences; raised on small catalogs (see :func:`~kgattr.engine.crossfit.heldout_cells`).
        top_k: candidates kept per gap.
        seed: for every random choice.
        cache_dir: text-embedding cache (see :class:`~kgattr.text.encoder.TextEncoder`).
        extractor: directory of a trained text extractor (``kgattr extract train``): the values it reads in a
            product's text become a third score of the mix, and their spans evidence (None: not used).
        text_backend: how BERT runs: ``torch``, ``onnx``, ``onnx-int8`` or ``static`` (see
            :mod:`kgattr.text.encoding`); new products are encoded the same way.
        read_text: False gives the graph-only ablation of the benchmark (GRAPE-style): no BERT, tf-idf or
            mentions, neighbours by shared known values; it completes only the products it was fitted on.
        n_jobs: processes that fit the linear scorers (-1: one per core; None: this one); the model is the same.
        progress: show progress bars.
    """

    def __init__(self, *, text_model: str | None = None, max_length: int = 48, hidden_channels: int = 256,
                 epochs: int | None = None, batch_size: int = 512, lr: float = 3e-3, lexical_lr: float = 1e-2,
                 svm_c: float = 0.5, mask_rate: float = 0.25, neighbours: int = 10, sequence_window: int = 10,
                 sharpness: float = 0.05,
                 category_weight: float = 0.5,
                 min_attribute_count: int = 20, calibration_share: float = 0.05, top_k: int = 10, seed: int = 0,
                 extractor: str | None = None, text_backend: str = "torch", read_text: bool = True, cache_dir=None,
                 n_jobs: int | None = None, progress: bool = False):
        self.text_model = text_model
        self.max_length = max_length
        self.hidden_channels = hidden_channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lexical_lr = lexical_lr
        self.svm_c = svm_c
        self.mask_rate = mask_rate
        self.neighbours = neighbours
        self.sequence_window = sequence_window
        self.sharpness = sharpness
        self.category_weight = category_weight
        self.min_attribute_count = min_attribute_count
        self.calibration_share = calibration_share
        self.top_k = top_k
        self.seed = seed
        self.extractor = extractor
        self.text_backend = text_backend
        self.read_text = read_text
        self.cache_dir = cache_dir
        self.n_jobs = n_jobs
        self.progress = progress

    PARAMS = ("text_model", "max_length", "hidden_channels", "epochs", "batch_size", "lr", "lexical_lr", "svm_c",
              "mask_rate", "neighbours", "sequence_window",
              "sharpness", "category_weight", "min_attribute_count", "calibration_share", "top_k", "seed", "extractor",
              "text_backend", "read_text")

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in self.PARAMS}

    def __repr__(self) -> str:
        return f"AttributeCompleter(epochs={self.epochs}, hidden_channels={self.hidden_channels})"

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, catalog, ontology: Ontology | None = None, *, reviewed=None, cluster=None) -> "AttributeCompleter":
        """Learn everything from ``catalog`` (the ontology is induced from it unless given).

        Args:
            catalog: a :class:`~kgattr.io.catalog.Catalog`, a pandas DataFrame in wide form or a catalog file.
            reviewed: a ``kgattr serve`` review store (path) or a :class:`~kgattr.engine.reviewed.Reviewed`: its
                confirmed values are learnt as known ones, its refused values are never proposed again for
                their products (kept with the model).
            cluster: a :class:`~kgattr.engine.distributed.RayCluster` that encodes the text and fits the linear
                scorers; the model is the same.
        """
        from .extract.copying import TextCopier, copy_gate
        from .engine.crossfit import cross_fit, heldout_cells
        from .engine.linear import process_map
        from .engine.memory import release, to_disk
        from .engine.mixture import fit_mixture
        from .engine.reviewed import Reviewed, as_reviewed
        from .engine.train import Neighbours, Pool, pool_states
        from .io.frames import as_catalog

        for cache in ("_value_matcher", "_evidence_cache", "_rule_memo", "fresh_extracted",
                      "_extractor_model", "_listing_index"):
            self.__dict__.pop(cache, None)
        catalog = as_catalog(catalog)
        self.reviewed_ = as_reviewed(reviewed) if reviewed is not None else Reviewed()
        catalog = self.reviewed_.apply(catalog)
        self.products_ = list(catalog.products)
        self.ontology_ = ontology or induce_ontology(catalog)
        self.rules_ = RuleSet(self.ontology_)
        self.graph_ = graph = build_graph(catalog)
        self.attributes_ = graph.attributes
        aindex = {a: i for i, a in enumerate(self.attributes_)}
        self.value_attribute_ = np.array([aindex[a] for a, _ in graph.values], dtype=np.int64)
        counts = np.bincount(self.value_attribute_[graph.has_value[1]], minlength=len(self.attributes_))
        distinct = np.bincount(self.value_attribute_, minlength=len(self.attributes_))
        self.targets_ = [a for i, a in enumerate(self.attributes_)
                         if counts[i] >= self.min_attribute_count and distinct[i] >= 2]
        self.category_attributes_ = category_attributes(catalog, self.attributes_)
        log.info("graph: %d values, %d targets", len(graph.values), len(self.targets_))
        self.lexical_ = LexicalFeatures().fit(catalog)
        self.text_hash_, self.record_hash_ = content_hashes(catalog)
        if self.read_text:         # the vectors, tf-idf rows and mentions are read from files a batch at a time
            text = to_disk(self.text_encoder().encode([p.text for p in catalog], progress=self.progress,
                                                      compute=cluster.encoder(self.text_encoder()) if cluster else None))
        else:
            text = np.zeros((len(catalog), 1), dtype=np.float32)
        # similar products first, their index out of memory before the tf-idf rows come (2.4, 1.7 GB at a million)
        inputs = None if self.read_text else self.model_inputs(catalog, text)      # no text: found by known values
        base = text if self.read_text else value_profile(inputs.values, self.seed)
        self.index_, hits = stored_neighbours(len(catalog), lambda r: self.vectors(base[r], [catalog.products[i] for i in r]),
                                              self.neighbours, base.shape[1])
        release()
        self.knn_ = (hits.index, hits.score)
        near = Neighbours(hits.index, hits.score, self.listed_near(catalog.products))
        log.info("neighbours: %s similar, %s listed nearby", hits.index.shape, near.sequence.shape)
        inputs = self.model_inputs(catalog, text) if inputs is None else inputs
        inputs.lexical, inputs.mentions = to_disk(inputs.lexical), to_disk(inputs.mentions)
        self.extracted_ = self.extracted_values(catalog.products)
        extracted = self.extracted_.matrix(len(catalog), len(graph.values)) if self.extracted_ else None
        log.info("text features: %s BERT, %d tf-idf terms", text.shape, self.lexical_.size)

        coo = inputs.values.tocoo()
        target_attr = np.isin(self.value_attribute_[coo.col], [aindex[a] for a in self.targets_])
        held = heldout_cells(target_attr, self.value_attribute_[coo.col], share=self.calibration_share,
                             num_targets=len(self.targets_), seed=self.seed)
        # small catalogs still get several updates per epoch
        batch_size = min(self.batch_size, max(32, len(catalog) // 8))
        self.model_, self.linear_, self.history_, heldout = cross_fit(
            self, inputs, near, target_attr, held, batch_size, map=cluster.map if cluster else process_map(self.n_jobs))
        log.info("trained: losses %s; %d held-out cells", [round(x, 4) for x in self.history_], len(heldout[0].truth))
        # mix weights (2, num_attributes, S): [products with known values, products without any],
        # [GNN, linear, similar-product vote, extractor (with one)]
        mixes = []
        while heldout:             # each part's scores (per attribute of its cells) are let go once it is mixed
            rows, truth, blocks, scores = heldout.pop(0)
            allowed = blocks.map(lambda cells, columns: np.stack(
                [self.allowed_mask(catalog.products[r].category)[columns] for r in rows[cells]]))
            if extracted is not None:
                scores = scores + [blocks.map(lambda cells, columns: extracted[rows[cells]][:, columns].toarray())]
            mixture = fit_mixture(scores, truth, allowed, blocks, len(self.attributes_), groups=rows)
            mixes.append(mixture.weights)
            if len(mixes) == 1:
                # every outcome out of fold: the mix fitted without the cell's fold, copies learned without it
                confidence, correct = mixture.confidence, mixture.correct
                attribute = self.value_attribute_[truth]
                copied, names = np.zeros(len(truth), bool), [self.attributes_[a] for a in attribute]
                self.copier_ = TextCopier(seed=self.seed).fit(catalog.products, self.targets_, zip(rows.tolist(), names)) \
                    if self.read_text else None
                if self.copier_:
                    self.copies_for_, copied, confidence, correct = copy_gate(self.copier_, rows, names, confidence, correct)
                    log.info("copies from the text for %d of %d targets", len(self.copies_for_), len(self.targets_))
                self.calibration_ = held_out_calibration(attribute, confidence, correct, copied)
            del scores, allowed
            release()
        self.mix_ = np.stack(mixes)
        self.pool_ = Pool(pool_states(self.model_, inputs, inputs.values, (graph.cooccurs, graph.pmi)), inputs.values,
                          self.value_attribute_)
        self.cells_ = score_gaps(self, catalog, inputs, near, extracted, on_disk=True)
        log.info("calibrated and scored %d gaps", len(self.cells_["product"]))
        return self

    def _category_rules(self) -> CategoryRules:
        """The rules' verdicts by category, made afresh whenever ``rules_`` is replaced."""
        memo = self.__dict__.get("_rule_memo")
        if memo is None or memo.rules is not self.rules_:
            memo = self._rule_memo = CategoryRules(self.rules_, self.graph_.values, self.attributes_, self.targets_,
                                                   self.category_attributes_)
        return memo

    def allowed_mask(self, category) -> np.ndarray:
        """(num_values,) bool: the values the rules allow for a product of ``category``."""
        return self._category_rules().allowed(category)

    def listed_near(self, products, by_category: bool = True) -> np.ndarray:
        """(n, L, 2 * sequence_window) pool rows listed next to each product; see :meth:`Listings.near`."""
        return self._listings().near(products, self.sequence_window, by_category)

    def _listings(self) -> Listings:
        if not hasattr(self, "_listing_index"):
            self._listing_index = Listings(self.graph_)
        return self._listing_index

    def text_encoder(self) -> TextEncoder:
        return TextEncoder(self.text_model, max_length=self.max_length, cache_dir=self.cache_dir,
                           backend=self.text_backend)

    def vectors(self, text: np.ndarray, catalog) -> np.ndarray:
        """(n, d) retrieval vectors of ``catalog``'s products from their ``text`` embeddings (n, text_dim)."""
        return product_vectors(text, self._listings().leaf(catalog), len(self.graph_.categories),
                               self.category_weight)

    def model_inputs(self, catalog, text: np.ndarray):
        from .engine.train import build_inputs

        return build_inputs(catalog, self.graph_, text, self.lexical_, self._matcher(), self.read_text)

    def extracted_values(self, products):
        """The extractor's spans in ``products`` that name a value node (None without an extractor)."""
        if not self.extractor:
            return None
        from .extract.combined import load_extractor
        from .extract.extraction import ExtractedValues

        if not hasattr(self, "_extractor_model"):
            self._extractor_model = load_extractor(self.extractor, progress=self.progress)
        return ExtractedValues.read(self._extractor_model, products, self.graph_.value_index())

    def _matcher(self):
        from .text.lexical import ValueMatcher

        if not hasattr(self, "_value_matcher"):
            self._value_matcher = ValueMatcher([v for _, v in self.graph_.values])
        return self._value_matcher

    # ---- scoring -------------------------------------------------------------------------------
    def gaps(self, product) -> list[int]:
        """Attribute indices kgattr would fill for ``product``: modelled, seen in its category, allowed, absent."""
        return self._category_rules().gaps(product)

    def thresholds(self, precision: float) -> dict[str, float | None]:
        """Per attribute: the lowest confidence at which its completions were at least ``precision`` precise
        on the calibration cells (None: never that precise); see :func:`~kgattr.engine.completion.precision_thresholds`."""
        self._check_fitted()
        cal = self.calibration_
        return precision_thresholds(cal["attribute"], cal["confidence"], cal["correct"].astype(bool),
                                    self.attributes_, precision)

    def _check_fitted(self) -> None:
        if not hasattr(self, "cells_"):
            raise NotFittedError("this AttributeCompleter is not fitted: call fit(...) or load(...) first")

    def complete(self, skus: list[str], catalog: Catalog | None = None, *,
                 explain: bool = False) -> list[ProductCompletion]:
        """Completions of the products ``skus``: taken from ``catalog`` when given, else from the training catalog.

        Args:
            explain: list with each completion every rule checked for its value (``Completion.checked``).
        """
        self._check_fitted()
        if catalog is not None:
            missing = [s for s in skus if s not in catalog and s not in self.graph_.skus]
            if missing:
                raise UnknownSKUError(f"unknown SKU {missing[0]!r}: not in {catalog.source} nor in the model")
            inside = [s for s in skus if s in catalog]
            sub = Catalog([catalog[s] for s in inside], catalog.source)
            result = []
            if inside:
                cells, index = live_cells(self, sub)
                result = completions(self, sub.products, cells, index, explain=explain)
            return result + self.complete([s for s in skus if s not in catalog], explain=explain)
        rows = self.graph_.skus.rows(skus)
        for s in (s for s, r in zip(skus, rows) if r < 0):
            raise UnknownSKUError(f"unknown SKU {s!r}: not in the model's catalog (give --catalog for new products)")
        products = self._pool_products(rows.tolist())
        self.fresh_extracted = ({}, None)
        return completions(self, products, stored_cells(self, rows, products, np.arange(len(rows))), self.knn_[0][rows],
                                 explain=explain)

    def impute(self, catalog: Catalog, *, evidence_floor: float = 0.0, reviewed=None) -> list[ProductCompletion]:
        """Completions of every gap in ``catalog`` (the catalog itself is not modified).

        Args:
            evidence_floor: gather evidence only for completions at least this confident (bulk speed).
            reviewed: a review store (path) or :class:`~kgattr.engine.reviewed.Reviewed` whose confirmed values count
                as known (``ProductCompletion.known``) and whose refused values are not proposed.
        """
        self._check_fitted()
        if reviewed is not None:
            from .engine.reviewed import as_reviewed

            reviewed = as_reviewed(reviewed)
            catalog = reviewed.apply(catalog)
        cells, index = live_cells(self, catalog)
        return completions(self, catalog.products, cells, index, evidence_floor, reviewed=reviewed)

    # ---- evidence --------------------------------------------------------------------------------
    def evidence(self, products, rows, attributes, values: list[str], neighbours, listed) -> list[dict]:
        """:class:`EvidenceFinder`'s evidence of each cell, with the extractor's span where it found the value."""
        if not hasattr(self, "_evidence_cache"):
            self._evidence_cache = EvidenceFinder(self.graph_, self.attributes_, self.value_attribute_)
        found = self._evidence_cache(products, rows, attributes, values, neighbours, listed)
        if not self.extracted_:
            return found
        fresh, extracted = self.fresh_extracted
        for p, attribute, value, evidence in zip([products[r] for r in rows.tolist()], attributes.tolist(), values, found):
            at, spans = (fresh[p.sku], extracted) if p.sku in fresh else (self.graph_.skus.get(p.sku), self.extracted_)
            span = spans.evidence(at, self._evidence_cache.vindex[self.attributes_[attribute], value], p) \
                if at is not None and spans else None
            if span:
                evidence.update(extracted=span, text=passage(getattr(p, span["field"]), span["start"], span["end"]))
        return found

    def _pool_products(self, rows) -> list:
        from .engine.modeldir import read_products

        if hasattr(self, "products_"):
            return [self.products_[r] for r in rows]
        return read_products(self.path_, [self.graph_.skus[r] for r in rows])

    # ---- persistence -----------------------------------------------------------------------------
    def ensure_network(self) -> None:
        if not hasattr(self, "model_"):
            from .engine.modeldir import load_network

            load_network(self)

    def save(self, path) -> None:
        """Write the model directory: config.json, safetensors, the FAISS index, id maps, products, a manifest.

        The directory is written whole beside ``path`` and then swapped in; ``path`` must be absent, empty or a
        model directory holding nothing else (see :func:`~kgattr.engine.modelfiles.check_target`)."""
        from .engine.modeldir import save

        self._check_fitted()
        save(self, path)

    @classmethod
    def load(cls, path, *, ontology=None) -> "AttributeCompleter":
        """Load a model directory; torch and FAISS are loaded only when new products must be scored.

        The rules are read afresh from the ontology files the model was trained with, so edits to them take
        effect without training again; where a file is gone, the copy saved with the model is used. A missing,
        truncated or unreadable file is a :class:`~kgattr.exceptions.ModelError` naming it.

        Args:
            ontology: Turtle file(s) whose rules replace those.
        """
        from .engine.modeldir import load

        return load(cls, path, ontology)

    # ---- pandas ----------------------------------------------------------------------------------
    def complete_frame(self, frame, *, min_confidence: float = 0.5):
        """A filled copy of a wide catalog DataFrame (``frame`` itself is never modified).

        Args:
            frame: columns ``sku``, ``title``, ``description``, ``category`` and one per attribute, as
                :func:`~kgattr.io.catalog.read_catalog` reads them; None and NaN are gaps.
            min_confidence: fill only gaps at least this confident.

        Returns:
            The copy, its gaps filled, with ``<attribute>_confidence`` (1.0 for a known value, NaN for a gap left
            empty) and ``<attribute>_source`` (``catalog``, ``kgattr`` or None) beside each attribute; a filled
            value takes its column's type where it converts.
        """
        from .io.catalog import read_catalog
        from .io.frames import filled_frame

        catalog = read_catalog(frame)
        return filled_frame(frame, catalog, self.impute(catalog), min_confidence)

    def cells(self, frame):
        """Every gap of a wide catalog DataFrame (or a Catalog, or a path) and what kgattr proposes for it.

        Returns:
            A DataFrame with columns sku, attribute, value (None: abstained), confidence, source (``kgattr``),
            evidence (a dict, as in ``complete --json``).
        """
        from .io.frames import as_catalog, cells_frame

        return cells_frame(self.impute(as_catalog(frame)))
