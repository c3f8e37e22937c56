"""What the server does, as plain Python: a loaded model, the catalog it reviews, the rule files it edits and the
review store, with every answer taken from the library (completer, authoring, audit, rules).

The completer keeps per-call state (rules swapped by a dry run, spans of freshly scored products), so its calls
are serialised by one lock; stored products' completions are computed ahead by a thread of their own (in small
batches, between requests) and kept as JSON until the rules change. New products are
scored by one thread of their own, in batches: whatever arrived while it was busy goes through BERT and the
network together.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import UnknownSKUError
from ..io.catalog import Catalog, Product
from ..io.reviews import ReviewStore

log = logging.getLogger(__name__)


@dataclass
class RuleSpec:
    """A rule as the forms and the API give it; the fields of ``kgattr rules add``."""
    kind: str
    category: str | None = None
    attribute: str | None = None
    values: list[str] | None = None
    regex: str | None = None
    low: float | None = None
    high: float | None = None
    condition: str | None = None          # --if ATTRIBUTE=VALUE
    then: str | None = None               # --then / --then-not ATTRIBUTE=VALUE
    other: str | None = None              # --from
    origin: str | None = None


def review_db(model) -> Path:
    """Where the review store of ``model`` lives by default: beside the model directory (training again replaces
    the directory, never the store)."""
    model = Path(model)
    return model.with_name(model.name + ".review.sqlite")


def as_json(answer) -> bytes:
    """An API answer as UTF-8 JSON, as FastAPI would send it (encoded here: faster than its own serialisation)."""
    return json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def expected_gain(confidence: float, auto_filled: bool, required: bool) -> float:
    """What a review of a cell is expected to add to the catalog, for sorting the queue.

    A cell filled without review gains from a review only if it is wrong (1 - confidence); a cell left empty
    gains a value, most cheaply when the suggestion is right (confidence). Attributes the rules require in the
    product's category count twice: they decide completeness.
    """
    return round((1 - confidence if auto_filled else confidence) * (2 if required else 1), 4)


class Workbench:
    """The model, catalog, rule files and review store behind ``kgattr serve``.

    Args:
        model: model directory written by ``kgattr train``.
        catalog: catalog to review (None: the model's training catalog, read from the model).
        ontology: Turtle files whose rules apply and are edited, the last one taking new rules (None: the files
            the model was trained with).
        db: review store (None: :func:`review_db` of ``model``).
        auto_fill: cells at least this confident are filled without review ...
        audit_share: ... but for this share of them, sent to the queue as an audit sample.
    """

    def __init__(self, model, *, catalog=None, ontology=None, db=None, auto_fill: float = 0.9,
                 audit_share: float = 0.05):
        from ..completer import AttributeCompleter
        from ..engine.modeldir import read_products
        from ..io.catalog import read_catalog

        self.model = Path(model)
        self.completer = AttributeCompleter.load(model, ontology=ontology)
        self.files = [Path(f) for f in (ontology or self.completer.ontology_.sources)]
        self.catalog = read_catalog(catalog) if catalog else \
            Catalog(read_products(model, list(self.completer.graph_.skus)), str(model))
        self.store = ReviewStore(db or review_db(model))
        self.auto_fill, self.audit_share = auto_fill, audit_share
        self.lock = threading.RLock()
        self._pending: list[tuple] = []            # (product, explain, Future) waiting for the scoring thread
        self._arrived = threading.Condition()       # guards _pending and _scorer
        self._scorer: threading.Thread | None = None
        self._cache: dict[tuple[str, bool], bytes] = {}     # (sku, explain) -> its answer as JSON
        self._warmer: threading.Thread | None = None

    # ---- completions --------------------------------------------------------------------------------------------
    def product(self, sku: str) -> Product:
        if sku in self.catalog:
            return self.catalog[sku]
        raise UnknownSKUError(f"unknown SKU {sku!r}: not in {self.catalog.source}")

    def completions(self, sku: str, explain: bool = False) -> dict:
        """``ProductCompletion.to_json()`` of a product of the catalog."""
        return json.loads(self.completions_json(sku, explain))

    def completions_json(self, sku: str, explain: bool = False) -> bytes:
        """:meth:`completions` as the API sends it (UTF-8 JSON), computed once."""
        key = (sku, explain)
        if key not in self._cache:
            self.product(sku)
            with self.lock:
                self._cache[key] = as_json(self.completer.complete([sku], self.catalog, explain=explain)[0].to_json())
        return self._cache[key]

    def cached_json(self, sku: str, explain: bool = False) -> bytes | None:
        """:meth:`completions_json` if it is cached already (None: it needs the completer)."""
        return self._cache.get((sku, explain))

    def warm_cache(self, batch: int = 32) -> None:
        """Compute every catalog product's completions in a thread (started here unless running), ``batch``
        products per turn of the lock so that requests are answered in between; a product asked for first is
        computed at once as before. :meth:`warmed` tells how far it is."""
        if self._warmer is None or not self._warmer.is_alive():
            self._warmer = threading.Thread(target=self._warm, args=(batch,), name="kgattr-warm", daemon=True)
            self._warmer.start()

    def warmed(self) -> dict:
        """{cached, products}: stored products whose completions are ready, of all."""
        return {"cached": sum((p.sku, False) in self._cache for p in self.catalog), "products": len(self.catalog)}

    def _warm(self, batch: int) -> None:
        while missing := [p.sku for p in self.catalog if (p.sku, False) not in self._cache]:
            for start in range(0, len(missing), batch):     # a rule change meanwhile empties the cache: next pass
                with self.lock:
                    chunk = [s for s in missing[start:start + batch] if (s, False) not in self._cache]
                    for pc in self.completer.complete(chunk, self.catalog) if chunk else []:
                        self._cache[(pc.sku, False)] = as_json(pc.to_json())

    def complete_new(self, product: Product, explain: bool = False) -> dict:
        """``ProductCompletion.to_json()`` of a product given whole (new or changed), scored now."""
        return self.submit(product, explain).result()

    def submit(self, product: Product, explain: bool = False):
        """Queue ``product`` for the scoring thread (started on first use).

        Returns a :class:`concurrent.futures.Future` of what :meth:`complete_new` returns; requests that arrive
        while a batch is scored form the next batch: one pass through BERT and the network costs little more
        than one product.
        """
        from concurrent.futures import Future

        future = Future()
        with self._arrived:
            self._pending.append((product, explain, future))
            if self._scorer is None:
                self._scorer = threading.Thread(target=self._score_forever, name="kgattr-scoring", daemon=True)
                self._scorer.start()
            self._arrived.notify()
        return future

    def _score_forever(self) -> None:
        while True:
            with self._arrived:
                self._arrived.wait_for(lambda: self._pending)
            with self.lock:
                self._score_pending()

    def _score_pending(self) -> None:
        """Score the waiting products that share the first one's ``explain`` and have distinct SKUs (the
        others wait for the next turn)."""
        with self._arrived:
            explain, batch, rest, skus = self._pending[0][1], [], [], set()
            for item in self._pending:
                if item[1] == explain and item[0].sku not in skus:
                    skus.add(item[0].sku)
                    batch.append(item)
                else:
                    rest.append(item)
            self._pending = rest
        try:
            found = self.completer.complete([p.sku for p, _, _ in batch], Catalog([p for p, _, _ in batch],
                                                                                  "<request>"), explain=explain)
            by_sku = {pc.sku: pc.to_json() for pc in found}
        except Exception as e:  # every waiting request gets the error, as its own call would have
            for _, _, future in batch:
                future.set_exception(e)
            return
        for p, _, future in batch:
            future.set_result(by_sku[p.sku])

    def warm_up(self) -> None:
        """Load what scoring new products needs (network, FAISS index, BERT) by scoring a copy of a catalog
        product, so that the first request does not wait for it."""
        if len(self.catalog):
            p = self.catalog.products[0]
            self.complete_new(Product("kgattr-warm-up", p.title + " .", p.description, p.category))

    def fill_queue(self) -> int:
        """Fill the review store with the catalog's scored gaps, once (cells of products the model was trained
        on come from its stored scores); returns the cells added."""
        if self.store.filled() is not None:
            return 0
        with self.lock:
            found = self.completer.impute(self.catalog, evidence_floor=float("inf"))
            rules = self.completer.rules_
        cells = []
        for pc in found:
            category = self.catalog[pc.sku].category
            required = rules.required(category)
            for c in pc.completions:
                if c.value is None:
                    continue                        # abstained: nothing to accept
                cells.append({"sku": pc.sku, "attribute": c.attribute, "category": list(category),
                              "value": c.value, "confidence": c.confidence, "alternatives": c.alternatives,
                              "gain": expected_gain(c.confidence, c.confidence >= self.auto_fill,
                                                    c.attribute in required)})
        added = self.store.fill(cells, self.catalog.source, auto_fill=self.auto_fill, audit_share=self.audit_share)
        log.info("review queue: %d cells from %s", added, self.catalog.source)
        return added

    # ---- rules --------------------------------------------------------------------------------------------------
    def _file(self) -> Path:
        from ..ontology.authoring import RuleError

        if not self.files:
            raise RuleError("the model was trained without an ontology file: start the server with --ontology "
                            "FILE to edit rules")
        return self.files[-1]

    def reload_rules(self) -> None:
        """Read the rule files afresh (after an edit here or by hand)."""
        from ..ontology.files import load_ontology
        from ..ontology.rules import RuleSet

        with self.lock:
            if self.files:
                self.completer.ontology_ = load_ontology(*self.files)
                self.completer.rules_ = RuleSet(self.completer.ontology_)
            self._cache.clear()
        if self._warmer is not None:
            self.warm_cache()

    def rules(self, category: str | None = None, attribute: str | None = None) -> list[dict]:
        from ..ontology.ontology import category_label
        from ..ontology.rules import list_rules

        return [{**r.__dict__, "category": list(r.category), "where": category_label(r.category),
                 "text": str(r)} for r in list_rules(self.completer.ontology_, category=category, attribute=attribute)]

    def make_rule(self, spec: RuleSpec, who: str):
        from ..ontology.authoring import make_rule

        return make_rule(self.completer.ontology_, spec.kind, category=spec.category, attribute=spec.attribute,
                         values=spec.values, regex=spec.regex, low=spec.low, high=spec.high,
                         condition=spec.condition, consequence=spec.then, other=spec.other,
                         origin=spec.origin or f"expert: {who}")

    def add_rule(self, spec: RuleSpec, who: str) -> dict:
        """Add the rule to the last rule file; returns {id, block, warnings}. A refused rule raises
        :class:`~kgattr.ontology.authoring.RuleError` and leaves the file as it was."""
        from ..ontology.authoring import add_rule
        from ..ontology.shacl import rule_block

        rule = self.make_rule(spec, who)
        warnings = add_rule(self._file(), rule)
        self.reload_rules()
        return {"id": rule.id, "file": str(self._file()), "block": rule_block(rule),
                "warnings": [str(w) for w in warnings]}

    def remove_rule(self, rule_id: str) -> None:
        from ..ontology.authoring import remove_rule

        remove_rule(self._file(), rule_id)
        self.reload_rules()

    def lint(self) -> list[dict]:
        from ..ontology.authoring import lint_files

        return [{"level": f.level, "message": f.message} for f in lint_files(self.files)] if self.files else []

    def dry_run(self, spec: RuleSpec | None = None, rule_id: str | None = None, who: str = "",
                examples: int = 10) -> dict:
        """``kgattr rules test``: the effect of a new rule (``spec``, not saved) or of an existing one
        (``rule_id``, against not having it) on the catalog: {counts, by_rule, flagged, changes, lint}; ``lint``
        lists the findings the rule would bring."""
        from ..ontology.audit import dry_run
        from ..ontology.authoring import RuleError, lint_ontology, without
        from ..ontology.ontology import Conditional, Ontology

        current = self.completer.ontology_
        if (spec is None) == (rule_id is None):
            raise RuleError("give either a rule to try or the id of one")
        if spec is not None:
            rule = self.make_rule(spec, who)
            added = Ontology(conditionals=[rule]) if isinstance(rule, Conditional) else Ontology(shapes=[rule])
            before, after = current, current.merge(added)
        else:
            before, after = without(current, rule_id), current
        with self.lock:
            result = dry_run(self.completer, self.catalog, before, after)
        new = sorted(set(lint_ontology(after)) - set(lint_ontology(before)))
        return {"counts": result.counts(), "by_rule": dict(result.by_rule()),
                "flagged": [v.__dict__ for v in result.flagged[:examples]], "changes": result.changes[:examples],
                "lint": [{"level": f.level, "message": f.message} for f in new]}

    def completeness(self) -> list[dict]:
        """Per category: products holding every required attribute, before review and with the reviewed and
        auto-filled values (:func:`~kgattr.ontology.audit.completeness`)."""
        from ..ontology.audit import completeness

        delta = self.store.values(auto=True)
        after = [Product(p.sku, attributes={**p.attributes, **delta.get(p.sku, {})}) for p in self.catalog]
        return [{**r.__dict__, "category": list(r.category), "where": " > ".join(r.category) or "(all)"}
                for r in completeness(self.catalog, self.completer.rules_, after)]

    def vocabulary(self) -> dict:
        """What the rule forms offer to pick: categories, attributes, and the values seen of each attribute."""
        onto = self.completer.ontology_
        values: dict[str, set] = {}
        for a, v in self.completer.graph_.values:
            values.setdefault(a, set()).add(v)
        return {"categories": sorted(" > ".join(c) for c in onto.categories),
                "attributes": sorted(onto.attributes),
                "values": {a: sorted(v) for a, v in sorted(values.items())}}
