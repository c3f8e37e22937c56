"""kgattr serve's HTTP API through FastAPI's TestClient, over a small model trained on the fixture catalog."""
import hashlib
import re
import threading

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from kgattr.serve.app import create_app  # noqa: E402
from kgattr.serve.workbench import Workbench  # noqa: E402
from kgattr.ontology.files import save_ontology

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def bench(served_model, fitted, tmp_path):
    rules = tmp_path / "rules.ttl"
    save_ontology(fitted.ontology_, rules)
    bench = Workbench(served_model, ontology=[rules], db=tmp_path / "review.sqlite", auto_fill=0.9, audit_share=0.5)
    bench.fill_queue()
    return bench


@pytest.fixture
def client(bench):
    return TestClient(create_app(bench, TOKEN))


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def first_open(client, **params) -> dict:
    cells = client.get("/api/queue", params={"per_page": 1, **params}).json()["cells"]
    assert cells, params
    return cells[0]


def test_completions_of_stored_and_new_products(client, fitted, catalog):
    sku = catalog.products[3].sku
    got = client.get(f"/api/products/{sku}/completions")
    assert got.status_code == 200
    assert got.json() == fitted.complete([sku])[0].to_json()
    assert client.get("/api/products/NOPE/completions").status_code == 404

    p = catalog.products[5]
    dropped = sorted(p.attributes)[0]
    line = {"sku": "NEW-1", "title": p.title, "description": p.description, "category": list(p.category),
            "attributes": {a: v for a, v in p.attributes.items() if a != dropped}}
    new = client.post("/api/completions", json=line)
    assert new.status_code == 200, new.text
    body = new.json()
    assert body["sku"] == "NEW-1" and dropped not in body["known"]
    assert {"attribute", "value", "confidence", "alternatives", "rejected", "evidence"} <= \
        set(body["completions"][0]) if body["completions"] else True
    bad = client.post("/api/completions", json={"title": "no sku"})
    assert bad.status_code == 422 and "sku" in bad.text


def test_stored_completions_computed_ahead(client, bench, fitted, catalog):
    bench.warm_cache(batch=7)
    bench._warmer.join(120)
    assert bench.warmed() == {"cached": len(catalog), "products": len(catalog)}
    assert client.get("/api/stats").json()["warm"] == bench.warmed()
    sku = catalog.products[9].sku
    assert client.get(f"/api/products/{sku}/completions").json() == fitted.complete([sku])[0].to_json()


def test_new_products_arriving_together_are_answered_each(client, catalog):
    lines = [{"sku": f"NEW-{i % 3}", "title": catalog.products[i].title + f" v{i}",
              "category": list(catalog.products[i].category)} for i in range(5)]     # NEW-0 and NEW-1 twice
    answers = [None] * len(lines)
    barrier = threading.Barrier(len(lines))

    def post(i):
        barrier.wait()
        answers[i] = client.post("/api/completions", json=lines[i])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(lines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a.status_code == 200 for a in answers)
    assert [a.json()["sku"] for a in answers] == [line["sku"] for line in lines]


def test_queue_filters_sorts_and_pages(client, bench):
    page = client.get("/api/queue", params={"per_page": 5}).json()
    assert page["total"] > 5 and len(page["cells"]) == 5
    assert {c["status"] for c in page["cells"]} <= {"open", "audit"}
    ranked = [(c["status"] == "audit", c["gain"]) for c in page["cells"]]
    assert ranked == sorted(ranked, reverse=True)                       # audits first, then by expected gain
    low = client.get("/api/queue", params={"sort": "confidence", "band": "low", "per_page": 500}).json()["cells"]
    assert all(c["confidence"] < 0.5 for c in low)
    assert [c["confidence"] for c in low] == sorted(c["confidence"] for c in low)
    attribute = page["cells"][0]["attribute"]
    only = client.get("/api/queue", params={"attribute": attribute, "per_page": 500}).json()
    assert only["total"] and all(c["attribute"] == attribute for c in only["cells"])
    leaf = page["cells"][0]["category"].split(" > ")[-1]
    assert all(c["category"].endswith(leaf) for c in
               client.get("/api/queue", params={"category": leaf}).json()["cells"])
    auto = client.get("/api/queue", params={"status": "auto"}).json()
    assert all(c["confidence"] >= 0.9 and c["value"] == c["suggested"] for c in auto["cells"])
    second = client.get("/api/queue", params={"per_page": 5, "page": 2}).json()["cells"]
    assert not {(c["sku"], c["attribute"]) for c in second} & {(c["sku"], c["attribute"]) for c in page["cells"]}
    assert client.get("/api/queue", params={"status": "maybe"}).status_code == 422
    assert client.get("/api/queue", params={"band": "huge"}).status_code == 422
    assert client.get("/api/queue", params={"page": 0}).status_code == 422


def test_writes_need_the_token(client):
    cell = first_open(client)
    body = {"sku": cell["sku"], "attribute": cell["attribute"], "action": "accept"}
    assert client.post("/api/decisions", json=body).status_code == 401
    assert client.post("/api/decisions", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/api/rules", json={"kind": "required", "attribute": "gender"}).status_code == 401
    assert client.delete("/api/rules/x").status_code == 401
    assert client.post("/api/queue/accept", json={"min_confidence": 0.5}).status_code == 401
    ok = client.post("/api/decisions", json=body, headers={**AUTH, "X-Reviewer": "ana"})
    assert ok.status_code == 200 and ok.json()["status"] == "accepted" and ok.json()["decided_by"] == "ana"


def test_browser_session_needs_csrf(client):
    assert client.post("/login", data={"token": "wrong", "who": "bo"}).status_code == 401
    login = client.post("/login", data={"token": TOKEN, "who": "bo"}, follow_redirects=False)
    assert login.status_code == 303 and "kgattr_session" in login.cookies
    page = client.get("/queue").text
    csrf = re.search(r'<meta name="csrf" content="([^"]+)"', page).group(1)
    cell = first_open(client)
    body = {"sku": cell["sku"], "attribute": cell["attribute"], "action": "reject"}
    refused = client.post("/api/decisions", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert client.post("/api/decisions", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    ok = client.post("/api/decisions", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["decided_by"] == "bo"
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.post("/api/decisions", json=body, headers={"X-CSRF-Token": csrf}).status_code == 401


def test_accept_edit_reject_and_export(client, bench):
    a, b, c = client.get("/api/queue", params={"per_page": 3}).json()["cells"]
    post = lambda cell, action, value=None: client.post(  # noqa: E731
        "/api/decisions", headers=AUTH, json={"sku": cell["sku"], "attribute": cell["attribute"], "action": action,
                                              "value": value})
    assert post(a, "accept").json()["value"] == a["suggested"]
    edited = post(b, "edit", "  Hand Typed ").json()
    assert edited["status"] == "edited" and edited["value"] == "Hand Typed"
    assert post(c, "reject").json()["value"] is None
    assert post(c, "edit", " ").status_code == 422
    assert post({"sku": "NOPE", "attribute": "x"}, "accept").status_code == 404
    assert post(a, "destroy").status_code == 422
    log = bench.store.decisions(b["sku"], b["attribute"])[-1]
    assert (log["who"], log["action"], log["suggested"], log["confidence"]) == \
        ("api", "edit", b["suggested"], b["confidence"])
    assert log["candidates"][0] == b["suggested"] and log["at"]
    export = client.get("/api/export")
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [__import__("json").loads(x) for x in export.text.splitlines()]
    delta = {(x["sku"], k): v for x in lines for k, v in x["attributes"].items()}
    assert delta[(a["sku"], a["attribute"])] == a["suggested"] and delta[(b["sku"], b["attribute"])] == "Hand Typed"
    assert (c["sku"], c["attribute"]) not in delta
    confirmed, refused = bench.store.training_labels()
    assert (b["sku"], b["attribute"], "Hand Typed") in confirmed and (c["sku"], c["attribute"], c["suggested"]) in refused
    reviewed = client.get("/api/queue", params={"origin": "reviewed"}).json()
    assert reviewed["total"] == 3 and {x["origin"] for x in reviewed["cells"]} == {"reviewed"}


def test_concurrent_decisions_are_all_kept(client, bench):
    cell = first_open(client)
    barrier = threading.Barrier(8)

    def edit(i):
        barrier.wait()
        client.post("/api/decisions", headers={**AUTH, "X-Reviewer": f"r{i}"},
                    json={"sku": cell["sku"], "attribute": cell["attribute"], "action": "edit", "value": f"v{i}"})

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = bench.store.decisions(cell["sku"], cell["attribute"])
    assert sorted(d["who"] for d in log) == [f"r{i}" for i in range(8)]
    now = bench.store.cells_of(cell["sku"])[cell["attribute"]]
    assert (now["value"], now["decided_by"]) == (log[-1]["value"], log[-1]["who"])      # the later one wins


def test_bulk_accept_and_audit_precision(client, bench):
    high = client.get("/api/queue", params={"per_page": 500}).json()["cells"]
    audit = [c for c in high if c["status"] == "audit"]
    assert len(audit) >= 2 and all(c["audit"] and c["confidence"] >= 0.9 for c in audit)
    assert client.get("/api/stats").json()["audit"]["precision"] is None
    client.post("/api/decisions", headers=AUTH, json={"sku": audit[0]["sku"], "attribute": audit[0]["attribute"],
                                                      "action": "reject"})
    client.post("/api/decisions", headers=AUTH, json={"sku": audit[1]["sku"], "attribute": audit[1]["attribute"],
                                                      "action": "accept"})
    assert client.get("/api/stats").json()["audit"] == {"decided": 2, "correct": 1, "precision": 0.5}
    waiting = sum(c["confidence"] >= 0.6 for c in client.get("/api/queue", params={"per_page": 500}).json()["cells"])
    done = client.post("/api/queue/accept", headers=AUTH, json={"min_confidence": 0.6})
    assert done.json() == {"accepted": waiting}
    assert all(c["confidence"] < 0.6 for c in client.get("/api/queue", params={"per_page": 500}).json()["cells"])
    assert client.post("/api/queue/accept", headers=AUTH, json={"min_confidence": 2}).status_code == 422


def test_rules_add_remove_lint_test_completeness(client, bench, fitted):
    from kgattr.ontology.authoring import RuleError, make_rule

    path = bench.files[-1]
    before = len(client.get("/api/rules").json())
    p = fitted.products_[0]
    category, attribute = " > ".join(p.category), sorted(p.attributes)[0]
    added = client.post("/api/rules", headers=AUTH, json={"kind": "required", "attribute": attribute,
                                                         "category": category, "origin": "expert: test"})
    assert added.status_code == 201, added.text
    rid = added.json()["id"]
    listed = client.get("/api/rules", params={"attribute": attribute}).json()
    assert any(r["id"] == rid and r["kind"] == "required" for r in listed)
    assert len(client.get("/api/rules").json()) == before + 1
    rows = client.get("/api/completeness").json()
    assert rows and all(attribute in r["required"] and r["complete_after"] >= r["complete"] for r in rows)
    assert isinstance(client.get("/api/rules/lint").json(), list)

    # refused: the CLI's message, a 422, the file byte for byte as it was
    unchanged = digest(path)
    bad = {"kind": "allowed", "attribute": "colour_of_the_moon", "values": "x"}
    with pytest.raises(RuleError) as cli_message:
        make_rule(fitted.ontology_, "allowed", attribute="colour_of_the_moon", values=["x"])
    refused = client.post("/api/rules", headers=AUTH, json=bad)
    assert refused.status_code == 422 and refused.json()["detail"] == str(cli_message.value)
    contradiction = client.post("/api/rules", headers=AUTH, json={"kind": "not-applicable", "attribute": attribute,
                                                                  "category": category})
    assert contradiction.status_code == 422 and "required" in contradiction.json()["detail"]
    assert client.post("/api/rules", headers=AUTH, json={"kind": "range", "attribute": attribute, "min": 5,
                                                        "max": 1}).status_code == 422
    assert client.post("/api/rules", headers=AUTH, json={"kind": "required", "nonsense": 1}).status_code == 422
    assert digest(path) == unchanged

    counts = client.post("/api/rules/test", headers=AUTH, json={"rule_id": rid}).json()
    assert set(counts["counts"]) >= {"existing values flagged", "completions decided now"}
    a = attribute
    trial = client.post("/api/rules/test", headers=AUTH, json={"rule": {"kind": "pattern", "attribute": a,
                                                                       "regex": "^zzz$"}})
    assert trial.status_code == 200 and trial.json()["counts"]["existing values flagged"] > 0
    assert digest(path) == unchanged
    assert client.post("/api/rules/test", headers=AUTH, json={}).status_code == 422

    assert client.delete(f"/api/rules/{rid}", headers=AUTH).json() == {"removed": rid}
    assert not any(r["id"] == rid for r in client.get("/api/rules").json())
    assert client.delete("/api/rules/no/such/rule", headers=AUTH).status_code == 422


def test_pages_render(client, catalog):
    sku = first_open(client)["sku"]
    for url in ("/queue", f"/products/{sku}", "/rules", "/completeness", "/login", "/docs", "/openapi.json",
                "/queue?band=high&sort=confidence"):
        page = client.get(url)
        assert page.status_code == 200, url
    assert client.get("/products/NOPE").status_code == 404
    product = client.get(f"/products/{sku}").text
    assert catalog[sku].title.split()[0] in product and "Similar products" in product
    vocabulary = client.get("/api/vocabulary").json()
    assert vocabulary["categories"] and vocabulary["attributes"] and vocabulary["values"]


def test_evidence_spans_are_highlighted():
    from kgattr.serve.pages import evidence_spans, highlight

    title = "Roadster Men Navy Blue Slim Fit <Shirt>"
    completions = [{"attribute": "colour", "value": "navy blue", "evidence": {}},
                   {"attribute": "brand", "value": "Roadster",
                    "evidence": {"extracted": {"field": "title", "start": 0, "end": 8}}},
                   {"attribute": "fit", "value": "Regular", "evidence": {}}]
    spans = evidence_spans(title, "title", completions)
    assert spans == [(0, 8, "brand"), (13, 22, "colour")]
    assert str(highlight(title, spans)) == ('<mark title="brand">Roadster</mark> Men <mark title="colour">Navy Blue'
                                            '</mark> Slim Fit &lt;Shirt&gt;')
    assert evidence_spans(title, "description", completions) == [(13, 22, "colour")]


def test_token_from_file_or_environment(tmp_path, monkeypatch):
    from kgattr.exceptions import KgattrError
    from kgattr.serve.auth import read_token

    monkeypatch.delenv("KGATTR_TOKEN", raising=False)
    assert read_token() is None
    monkeypatch.setenv("KGATTR_TOKEN", "from-env")
    assert read_token() == "from-env"
    (tmp_path / "token").write_text("  from-file \nsecond line\n")
    assert read_token(tmp_path / "token") == "from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KgattrError, match="empty"):
        read_token(tmp_path / "empty")
    with pytest.raises(KgattrError, match="cannot read"):
        read_token(tmp_path / "missing")
