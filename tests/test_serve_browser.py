"""kgattr serve's pages in Debian's Chromium (headless, driven by Playwright) against a live uvicorn server."""
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from kgattr.ontology.files import save_ontology

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

TOKEN = "browser-token"
SHOTS = Path("/tmp/serve-shots")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(served_model, fitted, tmp_path):
    from kgattr.serve.app import create_app
    from kgattr.serve.workbench import Workbench

    rules = tmp_path / "rules.ttl"
    save_ontology(fitted.ontology_, rules)
    bench = Workbench(served_model, ontology=[rules], db=tmp_path / "review.sqlite", audit_share=0.5)
    bench.fill_queue()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(bench, TOKEN), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", bench
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def page():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15000)
        yield page
        browser.close()


def test_review_in_the_browser(server, page, tmp_path, fitted):
    url, bench = server
    expect = playwright.expect
    page.goto(f"{url}/login?next=/queue")
    page.fill("input[name=who]", "mira")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/queue")
    rows = page.locator("tr.cell")
    selected = re.compile(r"\bselected\b")
    expect(rows.first).to_have_class(selected)
    page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)

    # a accepts the selected row and moves on; e edits the next one
    audits = [("audit" in rows.nth(i).get_attribute("class")) for i in range(2)]
    first = rows.nth(0)
    sku, attribute, suggested = (first.get_attribute(f"data-{k}") for k in ("sku", "attribute", "value"))
    page.keyboard.press("a")
    expect(first.locator(".status")).to_have_text("accepted")
    expect(rows.nth(1)).to_have_class(selected)
    second = rows.nth(1)
    page.keyboard.press("e")
    page.locator("input.edit").fill("Typed By Hand")
    page.keyboard.press("Enter")
    expect(second.locator(".status")).to_have_text("edited")
    if all(audits):                 # by expected gain, audit cells come first: one right, one wrong
        expect(page.locator("#precision")).to_contain_text("50.0% (1/2 audited cells)")
    cell = bench.store.cells_of(sku)[attribute]
    assert (cell["status"], cell["value"], cell["decided_by"]) == ("accepted", suggested, "mira")
    cell = bench.store.cells_of(second.get_attribute("data-sku"))[second.get_attribute("data-attribute")]
    assert (cell["status"], cell["value"], cell["decided_by"]) == ("edited", "Typed By Hand", "mira")
    page.screenshot(path=str(tmp_path / "queue-reviewed.png"), full_page=True)

    page.goto(f"{url}/products/{sku}")
    expect(page.locator("article.suggestion").first).to_be_visible()
    expect(page.locator("h1")).to_contain_text(sku)
    page.screenshot(path=str(tmp_path / "product.png"), full_page=True)

    # a rule through the form, then one the authoring checks refuse: its message shows, the file stays
    p = fitted.products_[0]
    category, attribute = " > ".join(p.category), sorted(p.attributes)[0]
    page.goto(f"{url}/rules")
    page.select_option("select[name=kind]", "required")
    page.select_option("select[name=category]", category)
    page.select_option("select[name=attribute]", attribute)
    page.click("#dry-run")
    expect(page.locator("#rule-result")).to_contain_text("completions decided now")
    page.click("#save-rule")
    expect(page.locator("#rule-result")).to_contain_text("added required/")
    assert any(r["kind"] == "required" and r["attribute"] == attribute for r in bench.rules())
    text = bench.files[-1].read_text()
    page.select_option("select[name=kind]", "not-applicable")
    page.click("#save-rule")
    expect(page.locator("#rule-result")).to_have_class("error")                 # shown in red
    expect(page.locator("#rule-result")).to_contain_text("is required in")
    assert bench.files[-1].read_text() == text
    page.screenshot(path=str(tmp_path / "rules.png"), full_page=True)

    page.goto(f"{url}/completeness")
    expect(page.locator("table.completeness td.chart").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "completeness.png"), full_page=True)

    SHOTS.mkdir(exist_ok=True)
    for name in ("queue.png", "product.png"):
        shutil.copy(tmp_path / name, SHOTS / name)
