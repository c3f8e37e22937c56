"""The review pages, rendered on the server (Jinja2); their buttons call the JSON API from static/app.js."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from ..io.reviews import QueueFilter
from .auth import COOKIE, Guard
from .workbench import Workbench

HERE = Path(__file__).parent
KINDS_FIELDS = {          # which form fields each kind of rule uses (see kgattr.ontology.authoring.make_rule)
    "allowed": ["attribute", "values"], "required": ["attribute"], "not-applicable": ["attribute"],
    "pattern": ["attribute", "regex"], "range": ["attribute", "min", "max"], "differs": ["attribute", "from"],
    "implies": ["if", "then"], "excludes": ["if", "then"],
}


def evidence_spans(text: str, field: str, completions: list[dict]) -> list[tuple[int, int, str]]:
    """(start, end, attribute) of the passages of ``text`` (the product's ``field``) that back a suggestion:
    the extractor's span where it read the value there, else the value written verbatim."""
    spans = []
    for c in completions:
        if not c["value"]:
            continue
        x = c["evidence"].get("extracted")
        if x:
            if x["field"] == field:
                spans.append((x["start"], x["end"], c["attribute"]))
            continue
        m = re.search(r"(?<!\w)" + re.escape(c["value"]) + r"(?!\w)", text, re.IGNORECASE)
        if m:
            spans.append((m.start(), m.end(), c["attribute"]))
    return sorted(spans)


def highlight(text: str, spans) -> Markup:
    """``text`` escaped, with ``spans`` wrapped in <mark> (overlapping ones skipped)."""
    out, at = [], 0
    for start, end, attribute in spans:
        if start < at:
            continue
        out += [escape(text[at:start]), Markup('<mark title="{}">').format(attribute), escape(text[start:end]),
                Markup("</mark>")]
        at = end
    out.append(escape(text[at:]))
    return Markup("").join(out)


def page_routes(bench: Workbench, guard: Guard) -> APIRouter:
    """The routes of the pages, as one router."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["url"] = lambda s: quote(str(s), safe="")
    router = APIRouter(include_in_schema=False)

    def render(request: Request, name: str, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"session": guard.session(request),
                                                          "stats": bench.store.stats(), **context})

    @router.get("/")
    def home():
        return RedirectResponse("/queue")

    @router.get("/queue")
    def queue(request: Request, category: str = "", attribute: str = "", band: str = "", origin: str = "",
              status: str = "", sort: str = "gain", page: int = 1):
        where = QueueFilter(category or None, attribute or None, band or None, origin or None, status or None)
        found = bench.store.queue(where, sort=sort, page=max(page, 1), per_page=50)
        titles = {c["sku"]: bench.catalog[c["sku"]].title for c in found["cells"] if c["sku"] in bench.catalog}
        filters = {"category": category, "attribute": attribute, "band": band, "origin": origin, "status": status,
                   "sort": sort}
        return render(request, "queue.html", found=found, titles=titles, filters=filters,
                      vocabulary=bench.vocabulary())

    @router.get("/products/{sku}")
    def product(request: Request, sku: str):
        p = bench.product(sku)
        result = bench.completions(sku, explain=True)
        completions = sorted(result["completions"], key=lambda c: -c["confidence"])
        return render(request, "product.html", product=p, completions=completions, cells=bench.store.cells_of(sku),
                      title=highlight(p.title, evidence_spans(p.title, "title", completions)),
                      description=highlight(p.description, evidence_spans(p.description, "description",
                                                                          completions)),
                      decisions=bench.store.decisions(sku))

    @router.get("/rules")
    def rules(request: Request):
        grouped = defaultdict(list)
        for r in bench.rules():
            grouped[r["where"]].append(r)
        return render(request, "rules.html", grouped=dict(sorted(grouped.items())), lint=bench.lint(),
                      files=[str(f) for f in bench.files], vocabulary=bench.vocabulary(), kinds=KINDS_FIELDS)

    @router.get("/completeness")
    def completeness(request: Request):
        return render(request, "completeness.html", rows=bench.completeness())

    @router.get("/login")
    def login_form(request: Request, next: str = "/queue"):
        return render(request, "login.html", next=next, error=None)

    @router.post("/login")
    def login(request: Request, token: str = Form(...), who: str = Form(""), next: str = Form("/queue")):
        sid = guard.login(token, who)
        if sid is None:
            return templates.TemplateResponse(request, "login.html", {"session": None, "stats": bench.store.stats(),
                                                                      "next": next, "error": "wrong token"},
                                              status_code=401)
        response = RedirectResponse(next if next.startswith("/") and not next.startswith("//") else "/queue",
                                    status_code=303)
        response.set_cookie(COOKIE, sid, httponly=True, samesite="strict")
        return response

    @router.post("/logout", dependencies=[Depends(guard.writer)])      # a CSRF-checked form post
    def logout(request: Request):
        guard.sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = RedirectResponse("/queue", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    return router
