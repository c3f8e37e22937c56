"""Bad input of every kind ends in one KgattrError line naming the file (and line and field where there is one),
and leaves the input as it was."""
import gzip
import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path

import pytest

from kgattr import RuleSet, read_catalog, write_catalog
from kgattr.exceptions import KgattrError
from kgattr.io.catalog import Catalog, Product
from kgattr.ontology.files import load_ontology
from kgattr.ontology.mining import induce_ontology

SAMPLE_TTL = Path(__file__).parent.parent / "ontology" / "sample.ttl"
GOOD = b'{"sku": "a", "title": "t", "category": ["A"], "attributes": {"year": "2012"}}\n'
MANY = b"".join(b'{"sku": "s%d", "title": "t", "description": "a shirt"}\n' % i for i in range(2000))


def parquet(frame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    return out.getvalue()


def frame(**columns):
    import pandas as pd

    return pd.DataFrame(columns)


def pattern_rule(pattern: str) -> bytes:
    return SAMPLE_TTL.read_bytes() + f"""
<https://kgattr.org/rule/pattern/all/brand> a sh:PropertyShape ;
    sh:targetSubjectsOf kg:sku ;
    sh:path <https://kgattr.org/attribute/brand> ;
    sh:pattern "{pattern}" .
""".encode()


def check_rules(path):
    """Load the ontology at ``path`` and check a product whose brand makes a bad pattern backtrack."""
    products = [Product("p1", "t", "", ("Apparel",), {"brand": "a" * 40 + "!"})]
    return RuleSet(load_ontology(path)).violations(Catalog(products))


def range_rule(low=None, high=None):
    from kgattr.ontology.authoring import make_rule

    return lambda path: make_rule(load_ontology(path), "range", attribute="year", low=low, high=high)


# (file name, its content: bytes, a callable returning bytes, or None for a directory, the reader,
#  what the message must hold besides the file name)
CASES = {
    "not-utf8": ("c.jsonl", GOOD + b'{"sku": "b", "title": "caf\xe9"}\n', read_catalog,
                 ["c.jsonl:2:", "not UTF-8", "column 27"]),
    "deep-nesting": ("c.jsonl", b'{"sku": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", read_catalog,
                     ["c.jsonl:1:", "nested too deeply"]),
    "long-number": ("c.jsonl", b'{"sku": "a", "price": ' + b"9" * 5000 + b"}\n", read_catalog,
                    ["c.jsonl:1:", "number too long"]),
    "gz-name-on-plain-file": ("c.jsonl.gz", GOOD, read_catalog, ["not gzip data"]),
    "truncated-gzip": ("c.jsonl.gz", gzip.compress(MANY)[:-30], read_catalog, ["damaged gzip data"]),
    "directory": ("c.jsonl", None, read_catalog, ["is a directory"]),
    "missing-file": ("c.jsonl", "missing", read_catalog, ["no such file"]),
    "empty-catalog": ("c.jsonl", b"\n  \n", read_catalog, ["no products"]),
    "ragged-csv": ("c.csv", b"sku,title\na,b\nc,d,e\n", read_catalog, ["c.csv:3:", "3 fields", "header has 2"]),
    "unclosed-quote-csv": ("c.csv", b'sku,title\na,"b\n', read_catalog, ["c.csv:", "malformed CSV"]),
    "csv-not-utf8": ("c.csv", b"sku,title\na,b\nc,\xff\n", read_catalog, ["c.csv:3:", "not UTF-8"]),
    "csv-no-sku": ("c.csv", b"id,title\na,b\n", read_catalog, ["field 'sku': no such column"]),
    "csv-repeated-column": ("c.csv", b"sku,year,year\na,1,2\n", read_catalog, ["column 3", "'year'"]),
    "tsv-duplicate-sku": ("c.tsv", b"sku\ttitle\na\tx\na\ty\n", read_catalog, ["c.tsv:3:", "duplicate SKU 'a'"]),
    "not-parquet": ("c.parquet", b"PAR1 but not really", read_catalog, ["not a readable Parquet file"]),
    "parquet-list-cell": ("c.parquet", lambda: parquet(frame(sku=["a", "b"], year=[["x"], ["y"]])), read_catalog,
                          ["row 0", "field 'year'", "list"]),
    "parquet-infinite": ("c.parquet", lambda: parquet(frame(sku=["a", "b"], price=[1.0, math.inf])), read_catalog,
                         ["row 1", "field 'price'", "not a finite number"]),
    "parquet-missing-sku": ("c.parquet", lambda: parquet(frame(sku=["a", None], year=[1, 2])), read_catalog,
                            ["row 1", "field 'sku': missing"]),
    "unknown-format": ("c.dat", b"\x00\x01\x02", read_catalog, ["cannot tell the catalog format"]),
    "surrogate-sku": ("c.jsonl", b'{"sku": "\\ud800"}\n', read_catalog, ["c.jsonl:1:", "field 'sku'", "surrogate"]),
    "surrogate-value": ("c.jsonl", GOOD + b'{"sku": "b", "attributes": {"x": "y\\udfff"}}\n', read_catalog,
                        ["c.jsonl:2:", "field 'attributes.x'", "surrogate"]),
    "surrogate-extra": ("c.jsonl", b'{"sku": "b", "notes": [{"k": "\\ud83d"}]}\n', read_catalog,
                        ["c.jsonl:1:", "field 'notes[0].k'", "surrogate"]),
    "record-a-list": ("c.jsonl", b'["sku", "a"]\n', read_catalog, ["c.jsonl:1:", "expected a JSON object, got a list"]),
    "record-null": ("c.jsonl", b"null\n", read_catalog, ["c.jsonl:1:", "got null"]),
    "sku-number": ("c.jsonl", b'{"sku": 7}\n', read_catalog, ["field 'sku'", "the number 7"]),
    "sku-nul": ("c.jsonl", b'{"sku": "a"}\n{"sku": "b\\u0000"}\n', read_catalog, ["c.jsonl:2:", "field 'sku'", "NUL"]),
    "sku-object": ("c.jsonl", b'{"sku": {"id": "a"}}\n', read_catalog, ["field 'sku'", "an object"]),
    "title-list": ("c.jsonl", b'{"sku": "a", "title": ["t"]}\n', read_catalog, ["field 'title'", "a list"]),
    "description-number": ("c.jsonl", b'{"sku": "a", "description": 1.5}\n', read_catalog, ["field 'description'"]),
    "category-number": ("c.jsonl", b'{"sku": "a", "category": 3}\n', read_catalog, ["field 'category'"]),
    "category-false": ("c.jsonl", b'{"sku": "a", "category": false}\n', read_catalog, ["field 'category'"]),
    "category-level-null": ("c.jsonl", b'{"sku": "a", "category": ["A", null]}\n', read_catalog,
                            ["field 'category[1]'", "null"]),
    "category-level-blank": ("c.jsonl", b'{"sku": "a", "category": ["A", " "]}\n', read_catalog,
                             ["field 'category[1]'", "blank"]),
    "attributes-list": ("c.jsonl", b'{"sku": "a", "attributes": ["x"]}\n', read_catalog, ["field 'attributes'"]),
    "attributes-zero": ("c.jsonl", b'{"sku": "a", "attributes": 0}\n', read_catalog, ["field 'attributes'"]),
    "attribute-number": ("c.jsonl", b'{"sku": "a", "attributes": {"year": 2012}}\n', read_catalog,
                         ["field 'attributes.year'", "the number 2012"]),
    "attribute-object": ("c.jsonl", b'{"sku": "a", "attributes": {"x\\ny": {}}}\n', read_catalog,
                         ["field 'attributes.x\\ny'", "an object"]),
    "attribute-blank-name": ("c.jsonl", b'{"sku": "a", "attributes": {" ": "v"}}\n', read_catalog,
                             ["field 'attributes'", "blank name"]),
    "ontology-directory": ("o.ttl", None, load_ontology, ["is a directory"]),
    "ontology-missing": ("o.ttl", "missing", load_ontology, ["no such file"]),
    "truncated-turtle": ("o.ttl", SAMPLE_TTL.read_bytes()[:3000], load_ontology, ["bad Turtle syntax"]),
    "truncated-turtle-in-a-string": ("o.ttl", SAMPLE_TTL.read_bytes()[:3004], load_ontology, ["bad Turtle syntax"]),
    "garbage-turtle": ("o.ttl", b"@prefix kg: <https://kgattr.org/ontology#> .\nkg:a kg:b ][ .\n", load_ontology,
                       ["o.ttl:2:"]),
    "turtle-not-utf8": ("o.ttl", SAMPLE_TTL.read_bytes().replace(b'"Apparel"', b'"Appar\xe9l"', 1), load_ontology,
                        ["o.ttl:20:", "not UTF-8"]),
    "turtle-surrogate": ("o.ttl", SAMPLE_TTL.read_bytes().replace(b'"Apparel"', b'"Appa\\uD800rel"', 1),
                         load_ontology, ["surrogate"]),
    "turtle-category-literal": ("o.ttl", SAMPLE_TTL.read_bytes() + b'"x" a kg:Category .\n', load_ontology,
                                ["'x' is not a kgattr category IRI"]),
    "catastrophic-pattern": ("o.ttl", pattern_rule("^(a|aa)+$"), check_rules,
                             ["rule pattern/all/brand", "took over", "nested repetition"]),
    "malformed-pattern": ("o.ttl", pattern_rule("(a"), check_rules, ["rule pattern/all/brand", "malformed pattern"]),
    "range-nan": ("o.ttl", SAMPLE_TTL.read_bytes(), range_rule(low=math.nan), ["--min", "not a finite number"]),
    "range-inf": ("o.ttl", SAMPLE_TTL.read_bytes(), range_rule(high=math.inf), ["--max", "not a finite number"]),
}
NO_FILE_IN_MESSAGE = {"range-nan", "range-inf", "catastrophic-pattern", "malformed-pattern"}


def digest(path: Path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else path.exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_error_line(tmp_path, case):
    name, content, reader, expected = CASES[case]
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif content != "missing":
        path.write_bytes(content() if callable(content) else content)
    before = digest(path)
    started = time.monotonic()
    with pytest.raises(KgattrError) as info:
        reader(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert case in NO_FILE_IN_MESSAGE or name in message, message
    for part in expected:
        assert part in message, message
    assert digest(path) == before
    assert time.monotonic() - started < 30


def test_truncated_gzip_through_the_cli_is_exit_2_and_one_line(tmp_path, monkeypatch, capsys):
    from kgattr.cli.main import main

    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(MANY)[:-30])
    monkeypatch.setattr(sys, "argv", ["kgattr", "rules", "check", str(path), "--ontology", str(SAMPLE_TTL)])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("kgattr: error: ") and "damaged gzip data" in err


@pytest.mark.parametrize("name", ["c.jsonl", "c.json", "c.ndjson", "c.jsonl.gz", "c.csv", "c.csv.gz", "c.tsv",
                                  "c.parquet", "c.unknown-jsonl", "c.unknown-tsv", "c.unknown-parquet"])
def test_formats_by_extension_and_content(tmp_path, catalog, name):
    import pandas as pd

    rows = [{"sku": p.sku, "title": p.title, "description": p.description, "category": " > ".join(p.category),
             **p.attributes} for p in catalog]
    kind = name.split("-")[-1] if "unknown" in name else name.split(".")[1]
    path = tmp_path / name
    if kind in ("jsonl", "json", "ndjson"):
        write_catalog(catalog, tmp_path / "w.jsonl.gz" if name.endswith(".gz") else tmp_path / "w.jsonl")
        path.write_bytes(next(tmp_path.glob("w.*")).read_bytes())
    elif kind == "parquet":
        pd.DataFrame(rows).to_parquet(path, index=False)
    else:
        text = pd.DataFrame(rows).to_csv(index=False, sep="\t" if kind == "tsv" else ",")
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    back = read_catalog(path)
    assert [(p.sku, p.category, p.attributes) for p in back] == [(p.sku, p.category, p.attributes) for p in catalog]


def test_format_argument_overrides_the_extension(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("sku\ttitle\na\tb, c\n")
    assert read_catalog(path, format="tsv")["a"].title == "b, c"
    with pytest.raises(KgattrError, match="field 'sku': no such column"):
        read_catalog(path, format="csv")
    with pytest.raises(KgattrError, match="unknown catalog format 'xml'"):
        read_catalog(path, format="xml")


def test_typed_parquet_and_dataframe_cells_read_as_written(tmp_path):
    import numpy as np
    import pandas as pd

    df = pd.DataFrame({"sku": ["a", "b", "c"], "year": [2012.0, np.nan, 2016.0], "count": pd.array([1, None, 3]),
                       "ok": [True, None, False], "ratio": [0.1, 2.5, None], "category": ["A > B", None, "A"]})
    path = tmp_path / "c.parquet"
    df.to_parquet(path, index=False)
    for source in (path, df):
        c = read_catalog(source)
        assert c["a"].attributes == {"year": "2012", "count": "1", "ok": "True", "ratio": "0.1"}
        assert c["b"].attributes == {"ratio": "2.5"} and c["b"].category == ()
        assert c["c"].attributes == {"year": "2016", "count": "3", "ok": "False"} and c["c"].category == ("A",)
    (tmp_path / "c.csv").write_text("sku,year\na,2012.0\n")
    assert read_catalog(tmp_path / "c.csv")["a"].attributes == {"year": "2012.0"}      # CSV text is text


def test_dataframe_errors_name_row_and_column():
    import pandas as pd

    with pytest.raises(KgattrError, match=r"<DataFrame>: row 1: field 'year': .*list"):
        read_catalog(pd.DataFrame({"sku": ["a", "b"], "year": ["2012", ["x"]]}))
    with pytest.raises(KgattrError, match=r"<DataFrame>: row 1: field 'title': .*surrogate"):
        read_catalog(pd.DataFrame({"sku": ["a", "b"], "title": ["t", "\ud800"]}, dtype=object))
    with pytest.raises(KgattrError, match=r"column 2: expected a name, got the number 0"):
        read_catalog(pd.DataFrame({"sku": ["a"], 0: ["x"]}))
    with pytest.raises(KgattrError, match="cannot read a catalog from a list"):
        read_catalog([{"sku": "a"}])
    assert read_catalog(pd.DataFrame({"sku": ["a"], "year": [2012]}).set_index("sku"))["a"].attributes == \
        {"year": "2012"}


def test_null_means_missing_but_for_the_sku(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"sku": "a", "title": None, "category": None, "attributes": {"x": None, "y": "1"}}))
    p = read_catalog(path)["a"]
    assert (p.title, p.category, p.attributes) == ("", (), {"y": "1"})


def test_damaged_ontology_cache_is_set_aside_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("KGATTR_CACHE", str(tmp_path / "cache"))
    first = load_ontology(SAMPLE_TTL)
    cached, = (tmp_path / "cache").glob("ontology-*.json")
    good = cached.read_bytes()
    for damage in (good[:len(good) // 2], b"\xff\xfe garbage", good.replace(b'"Apparel"', b'"Apparol"', 1),
                   b"", json.dumps([1, 2]).encode()):
        cached.write_bytes(damage)
        again = load_ontology(SAMPLE_TTL)
        assert (again.shapes, again.categories, again.conditionals) == (first.shapes, first.categories,
                                                                      first.conditionals)
        assert cached.read_bytes() == good and cached.with_name(cached.name + ".damaged").read_bytes() == damage
    cached.unlink()
    cached.mkdir()                                           # even a directory in its place
    assert load_ontology(SAMPLE_TTL).shapes == first.shapes


def test_odd_shapes_are_uncompiled_not_errors(tmp_path):
    odd = b"""
<https://kgattr.org/rule/odd/1> a sh:PropertyShape ; sh:targetSubjectsOf kg:sku ;
    sh:path <https://kgattr.org/attribute/year> ; sh:minInclusive "low" .
<https://kgattr.org/rule/odd/2> a sh:PropertyShape ; sh:targetSubjectsOf kg:sku ;
    sh:path <https://kgattr.org/attribute/year> ; sh:maxCount ( 1 ) .
<https://kgattr.org/rule/odd/3> a sh:PropertyShape ; sh:targetSubjectsOf kg:sku ;
    sh:path <https://kgattr.org/attribute/brand> ; sh:in "Nike" .
<https://kgattr.org/rule/odd/4> a sh:PropertyShape ; sh:targetSubjectsOf kg:sku ;
    sh:path <https://kgattr.org/attribute/brand> ; sh:pattern "a", "b" .
<https://kgattr.org/rule/odd/5> a sh:NodeShape ; sh:targetSubjectsOf kg:sku ; sh:closed "maybe" .
<https://kgattr.org/rule/odd/6> a sh:NodeShape ; sh:targetSubjectsOf kg:sku ; sh:or "x" .
<https://kgattr.org/rule/odd/7> a sh:PropertyShape ; sh:targetSubjectsOf kg:sku ;
    sh:path <https://kgattr.org/attribute/brand> ; sh:in _:l .
_:l rdf:first "a" ; rdf:rest _:l .
<https://kgattr.org/rule/odd/8> a sh:PropertyShape ; sh:targetSubjectsOf kg:sku ;
    sh:path <https://kgattr.org/attribute/year> ; sh:maxInclusive "NaN"^^xsd:double .
"""
    path = tmp_path / "o.ttl"
    path.write_bytes(SAMPLE_TTL.read_bytes() + odd)
    onto = load_ontology(path)
    assert {rid for rid, _ in onto.uncompiled} == {f"odd/{i}" for i in range(1, 9)}
    assert not any(s.id.startswith("odd/") for s in onto.shapes)


@pytest.mark.parametrize("options, option", [({"min_support": 0}, "--min-support"),
                                             ({"min_confidence": 1.5}, "--min-confidence")])
def test_rule_mining_refuses_thresholds_it_cannot_use(catalog, options, option):
    from kgattr.ontology.mining import suggest

    with pytest.raises(KgattrError, match=option):
        suggest(catalog, **options)


@pytest.mark.slow
def test_regex_patterns_agree_with_pyshacl(catalog):
    """The compiled checks match patterns with the regex module (and a time limit); pySHACL, the reference, with re."""
    from kgattr.ontology.ontology import Property, Shape
    from kgattr.ontology.rules import shacl_violations

    patterns = ["^[A-M]", "o", "^\\d+$", "(?i)^nike$", "\\s", "^(Cotton|Linen)$", "[^a-z]$", "\\w{6,}", "^.{0,5}$",
                "(a|e)\\1", "^(?!Adults)", "ü|é", "\\bFit\\b"]
    onto = induce_ontology(catalog)
    names = sorted(onto.attributes)
    for i, pattern in enumerate(patterns):
        rid = f"pattern/all/p{i}"
        onto.shapes.append(Shape(rid, (), properties={names[i % len(names)]: Property(rid, pattern=pattern)}))
    compiled = {(v.sku, v.attribute, v.value, v.rule) for v in RuleSet(onto).violations(catalog)}
    reference = {(v.sku, v.attribute, v.value, v.rule) for v in shacl_violations(catalog, onto)}
    assert compiled == reference
    assert {rule for *_, rule in compiled if rule.startswith("pattern/")}
