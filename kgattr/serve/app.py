"""The FastAPI app: the JSON API under /api (shapes as ``kgattr complete --json``) and the review pages.

Reads are open; writes need the token (see :mod:`kgattr.serve.auth`). Library errors become 4xx answers carrying
the library's own message: an unknown SKU or cell 404, any other bad input (a refused rule among them) 422.
"""
from __future__ import annotations

import asyncio
import json
from typing import Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..exceptions import KgattrError, UnknownSKUError
from ..io.catalog import Product
from ..io.reviews import QueueFilter, UnknownCellError
from .auth import Guard
from .workbench import RuleSpec, Workbench, as_json


class NewProduct(BaseModel):
    """A catalog line (see the README's catalog format)."""
    sku: str = Field(min_length=1)
    title: str = ""
    description: str = ""
    category: list[str] | str = []
    attributes: dict[str, str] = {}

    def product(self) -> Product:
        category = self.category if isinstance(self.category, list) else \
            [c.strip() for c in self.category.split(">") if c.strip()]
        return Product(self.sku, self.title, self.description, tuple(category),
                       {k: v for k, v in self.attributes.items() if v.strip()})


class Decision(BaseModel):
    sku: str
    attribute: str
    action: Literal["accept", "edit", "reject"]
    value: str | None = Field(None, description="the reviewer's value (edit)")


class BulkAccept(BaseModel):
    min_confidence: float = Field(ge=0, le=1)
    category: str | None = None
    attribute: str | None = None
    band: Literal["low", "mid", "high"] | None = None
    status: str | None = None


class RuleBody(BaseModel):
    """A rule, with the options of ``kgattr rules add`` as fields (``if``, ``then``, ``then_not``, ``from``,
    ``min``, ``max``); ``values`` as a list or comma-separated."""
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    kind: str
    category: str | None = None
    attribute: str | None = None
    values: list[str] | str | None = None
    regex: str | None = None
    low: float | None = Field(None, alias="min")
    high: float | None = Field(None, alias="max")
    condition: str | None = Field(None, alias="if")
    then: str | None = None
    then_not: str | None = None
    other: str | None = Field(None, alias="from")
    origin: str | None = None

    def spec(self) -> RuleSpec:
        def blank(x):
            return x if x not in ("", None) else None

        values = self.values.split(",") if isinstance(self.values, str) else self.values
        values = [v for v in (values or []) if v.strip()] or None
        return RuleSpec(self.kind, blank(self.category), blank(self.attribute), values, blank(self.regex),
                        self.low, self.high, blank(self.condition),
                        blank(self.then_not if self.kind == "excludes" else self.then), blank(self.other),
                        blank(self.origin))


class DryRunBody(BaseModel):
    rule: RuleBody | None = None
    rule_id: str | None = None


def create_app(bench: Workbench, token: str) -> FastAPI:
    """The app over ``bench``; writes need ``token``."""
    from .pages import HERE, page_routes

    app = FastAPI(title="kgattr review", summary="Completions, the review queue and the rules of a kgattr model.")
    guard = Guard(token)
    app.state.bench, app.state.guard = bench, guard
    writer = Depends(guard.writer)

    @app.exception_handler(KgattrError)
    async def library_error(request: Request, e: KgattrError):
        status = 404 if isinstance(e, (UnknownSKUError, UnknownCellError)) else 422
        return JSONResponse({"detail": str(e)}, status_code=status)

    @app.get("/api/products/{sku}/completions", tags=["completions"], response_model=dict)
    async def stored_completions(sku: str, explain: bool = False) -> Response:
        """Completions of a product of the catalog (as ``kgattr complete --json``)."""
        # a cached answer is sent from the event loop as encoded once; only a first one takes a thread
        body = bench.cached_json(sku, explain) or await run_in_threadpool(bench.completions_json, sku, explain)
        return Response(body, media_type="application/json")

    @app.post("/api/completions", tags=["completions"], response_model=dict)
    async def new_completions(product: NewProduct, explain: bool = False) -> Response:
        """Completions of a product posted as a catalog line, scored now (with those posted meanwhile)."""
        # awaited, not run in the thread pool: waiting requests hold no thread, so none caps the batch
        answer = await asyncio.wrap_future(bench.submit(product.product(), explain))
        return Response(as_json(answer), media_type="application/json")

    @app.get("/api/queue", tags=["review"])
    def queue(category: str | None = None, attribute: str | None = None,
              band: Literal["low", "mid", "high"] | None = None,
              origin: Literal["model", "reviewed"] | None = None, status: str | None = None,
              sort: Literal["gain", "confidence", "-confidence"] = "gain", page: int = Query(1, ge=1),
              per_page: int = Query(50, ge=1, le=500)) -> dict:
        """Cells waiting for review (status open or audit, unless ``status`` or ``origin`` says otherwise)."""
        return bench.store.queue(QueueFilter(category, attribute, band, origin, status), sort=sort, page=page,
                                 per_page=per_page)

    @app.post("/api/decisions", tags=["review"])
    def decide(d: Decision, who: str = writer) -> dict:
        """Accept, edit or reject one cell; returns the cell as it is now."""
        return bench.store.decide(d.sku, d.attribute, d.action, who, d.value)

    @app.post("/api/queue/accept", tags=["review"])
    def accept_all(b: BulkAccept, who: str = writer) -> dict:
        """Accept every cell of a filter at least ``min_confidence`` confident."""
        where = QueueFilter(b.category, b.attribute, b.band, None, b.status, b.min_confidence)
        return {"accepted": bench.store.accept_all(where, who)}

    @app.get("/api/stats", tags=["review"])
    def stats() -> dict:
        """Cells per status; precision measured on the audited cells; stored products whose completions are
        ready (``warm``)."""
        return {**bench.store.stats(), "warm": bench.warmed()}

    @app.get("/api/export", tags=["review"])
    def export(auto: bool = False) -> Response:
        """Reviewed values as a catalog delta, JSON Lines ``{"sku", "attributes"}`` (``auto``: with the cells
        filled without review)."""
        lines = [json.dumps({"sku": s, "attributes": a}, ensure_ascii=False) + "\n"
                 for s, a in bench.store.values(auto=auto).items()]
        return Response("".join(lines), media_type="application/x-ndjson",
                        headers={"Content-Disposition": 'attachment; filename="reviewed.jsonl"'})

    @app.get("/api/rules", tags=["rules"])
    def rules(category: str | None = None, attribute: str | None = None) -> list[dict]:
        """The rules, as ``kgattr rules list``."""
        return bench.rules(category, attribute)

    @app.post("/api/rules", tags=["rules"], status_code=201)
    def add_rule(body: RuleBody, who: str = writer) -> dict:
        """Add a rule to the rule file (``kgattr rules add``); a refused rule is a 422 and the file is untouched."""
        return bench.add_rule(body.spec(), who)

    @app.delete("/api/rules/{rule_id:path}", tags=["rules"])
    def remove_rule(rule_id: str, who: str = writer) -> dict:
        """Remove a rule's block from the rule file (``kgattr rules remove``)."""
        bench.remove_rule(rule_id)
        return {"removed": rule_id}

    @app.get("/api/rules/lint", tags=["rules"])
    def lint() -> list[dict]:
        """``kgattr rules lint`` of the rule files."""
        return bench.lint()

    @app.post("/api/rules/test", tags=["rules"])
    def rules_test(body: DryRunBody, who: str = writer) -> dict:
        """Dry run (``kgattr rules test``) of a rule not saved, or of an existing one by id."""
        return bench.dry_run(body.rule.spec() if body.rule else None, body.rule_id, who)

    @app.get("/api/completeness", tags=["rules"])
    def completeness() -> list[dict]:
        """Required attributes filled per category, before review and with reviewed and auto-filled values."""
        return bench.completeness()

    @app.get("/api/vocabulary", tags=["rules"])
    def vocabulary() -> dict:
        """Categories, attributes and values the rule forms offer."""
        return bench.vocabulary()

    from fastapi.staticfiles import StaticFiles

    app.include_router(page_routes(bench, guard))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
