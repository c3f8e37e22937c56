"""Property-based fuzzing of the readers: real lines of the sample catalog and ontology, mutated (bytes flipped,
cut, inserted; fields given random JSON values; Turtle tokens swapped), let only KgattrError escape.

Each property runs twice: a quick, deterministic run in the default suite, and a long one under ``-m slow``
(KGATTR_FUZZ_EXAMPLES sets its number of examples)."""
import gzip
import io
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgattr import RuleSet, read_catalog
from kgattr.exceptions import KgattrError
from kgattr.io.datasets import make_catalog
from kgattr.ontology.rules import list_rules
from kgattr.ontology.files import load_ontology, to_turtle

QUICK = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))
LONG = settings(QUICK, max_examples=int(os.environ.get("KGATTR_FUZZ_EXAMPLES", 2000)))
BUDGETS = pytest.mark.parametrize("budget", [QUICK, pytest.param(LONG, marks=pytest.mark.slow)], ids=["quick", "long"])

SAMPLE = make_catalog(40, seed=2)
LINES = [json.dumps(p.to_json(), ensure_ascii=False).encode() for p in SAMPLE]
TURTLE = (Path(__file__).parent.parent / "ontology" / "sample.ttl").read_bytes()
SNIPPETS = [b"\\ud800", b"\\udfff", b"[" * 3000, b'{"a":' * 3000, b"9" * 5000, b"\xff", b"\xed\xa0\x80", b"\x00",
            b"NaN", b"-Infinity", b'"', b",", b"}", b"\n", b"\r", b"\\", b"null", b"[]", b"{}", b"\t", b'","']
TOKENS = ['"x"', "( 1 2 )", "( )", "[]", "_:b", "true", '"maybe"', '"NaN"^^xsd:double', '"INF"^^xsd:double',
          "<https://kgattr.org/category/>", "<https://kgattr.org/attribute/>", "<https://kgattr.org/category/A//B>",
          "kg:sku", "sh:in", "-5", "1.5", '"(a|aa)+$"', '"("', '"\\uD800"', "rdf:nil", '"2012-01-01"^^xsd:date']
WEIRD = ["\ud800", "a\udfffb", "", " ", "\n", "A > B", "2012.0", "x" * 300]
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
                           | st.sampled_from(WEIRD),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3), max_leaves=6)


def only_kgattr_errors(read, *args):
    """Call ``read``; a KgattrError must be one line; any other exception fails the test."""
    try:
        return read(*args)
    except KgattrError as e:
        assert "\n" not in str(e), str(e)
        return None


@st.composite
def mutated_bytes(draw, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, cut short, or with a snippet inserted."""
    kind = draw(st.sampled_from(["flip", "cut", "insert"]))
    if kind == "cut":
        return data[:draw(st.integers(0, len(data)))]
    if kind == "insert":
        i = draw(st.integers(0, len(data)))
        return data[:i] + draw(st.sampled_from(SNIPPETS) | st.binary(max_size=6)) + data[i:]
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@st.composite
def mutated_record(draw) -> bytes:
    """A sample line with one field (core, attribute, category level or extra) given a random JSON value."""
    record = json.loads(draw(st.sampled_from(LINES)))
    value = draw(JSON_VALUES)
    where = draw(st.sampled_from(["core", "level", "attribute", "extra", "drop"]))
    if where == "core" or (where == "level" and not record["category"]):
        record[draw(st.sampled_from(["sku", "title", "description", "category", "attributes"]))] = value
    elif where == "level":
        record["category"][draw(st.integers(0, len(record["category"]) - 1))] = value
    elif where == "attribute":
        record["attributes"][draw(st.sampled_from(sorted(record["attributes"])))] = value
    elif where == "extra":
        record[draw(st.text(max_size=5))] = value
    else:
        record.pop(draw(st.sampled_from(sorted(record))))
    return json.dumps(record, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


def a_line():
    return st.sampled_from(LINES).flatmap(mutated_bytes) | mutated_record()


@BUDGETS
def test_json_lines(tmp_path, budget):
    @budget
    @given(a_line(), st.sampled_from(["c.jsonl", "c.ndjson", "c.json", "c.data"]))
    def check(line, name):
        path = tmp_path / name
        path.write_bytes(LINES[0] + b"\n" + line + b"\n")
        only_kgattr_errors(read_catalog, path)
    check()


@BUDGETS
def test_gzip(tmp_path, budget):
    whole = gzip.compress(b"\n".join(LINES[:10]))

    @budget
    @given(mutated_bytes(whole) | a_line().map(lambda line: gzip.compress(LINES[0] + b"\n" + line)))
    def check(data):
        path = tmp_path / "c.jsonl.gz"
        path.write_bytes(data)
        only_kgattr_errors(read_catalog, path)
    check()


def wide_rows(separator: str) -> list[bytes]:
    import pandas as pd

    rows = [{"sku": p.sku, "title": p.title, "description": p.description, "category": " > ".join(p.category),
             **p.attributes} for p in SAMPLE]
    return pd.DataFrame(rows).to_csv(index=False, sep=separator).encode().splitlines()


@BUDGETS
@pytest.mark.parametrize("name, separator", [("c.csv", ","), ("c.tsv", "\t")])
def test_csv_and_tsv(tmp_path, budget, name, separator):
    rows = wide_rows(separator)

    @budget
    @given(st.integers(0, len(rows) - 1).flatmap(lambda i: st.tuples(st.just(i), mutated_bytes(rows[i]))))
    def check(change):
        i, row = change
        path = tmp_path / name
        path.write_bytes(b"\n".join(rows[:i] + [row] + rows[i + 1:]) + b"\n")
        only_kgattr_errors(read_catalog, path)
    check()


CELLS = st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=6) \
    | st.sampled_from(WEIRD) | st.lists(st.text(max_size=3), max_size=2)


@st.composite
def frames(draw):
    import pandas as pd

    n = draw(st.integers(1, 4))
    columns = {"sku": draw(st.lists(st.text(min_size=1, max_size=3) | CELLS, min_size=n, max_size=n))}
    for name in draw(st.lists(st.sampled_from(["title", "category", "year", "brand", "", "sku "]), max_size=3,
                              unique=True)):
        columns[name] = draw(st.lists(CELLS, min_size=n, max_size=n))
    frame = pd.DataFrame(columns, dtype=object)
    if draw(st.booleans()):
        try:
            frame = frame.infer_objects()                # typed columns where pandas can make them
        except Exception:  # a column pandas cannot type (a lone surrogate in arrow strings); keep it as objects
            pass
    return frame


@BUDGETS
def test_dataframes_and_their_parquet(tmp_path, budget):
    @budget
    @given(frames())
    def check(frame):
        only_kgattr_errors(read_catalog, frame)
        out = io.BytesIO()
        try:
            frame.to_parquet(out, index=False)
        except Exception:  # pyarrow cannot store every mixed column; nothing to read then
            return
        path = tmp_path / "c.parquet"
        path.write_bytes(out.getvalue())
        only_kgattr_errors(read_catalog, path)
    check()


@BUDGETS
def test_damaged_parquet(tmp_path, budget):
    import pandas as pd

    out = io.BytesIO()
    pd.DataFrame({"sku": [p.sku for p in SAMPLE], "year": [float(p.attributes.get("year", "nan")) for p in SAMPLE]}
                 ).to_parquet(out, index=False)

    @budget
    @given(mutated_bytes(out.getvalue()))
    def check(data):
        path = tmp_path / "c.parquet"
        path.write_bytes(data)
        only_kgattr_errors(read_catalog, path)
    check()


@st.composite
def mutated_turtle(draw) -> bytes:
    """The sample ontology with its bytes mutated, a line dropped or doubled, or one token swapped for another."""
    lines = TURTLE.split(b"\n")
    kind = draw(st.sampled_from(["bytes", "drop", "double", "token", "token", "token"]))
    if kind == "bytes":
        return draw(mutated_bytes(TURTLE))
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "drop":
        return b"\n".join(lines[:i] + lines[i + 1:])
    if kind == "double":
        return b"\n".join(lines[:i + 1] + lines[i:])
    tokens = list(re.finditer(rb'"[^"]*"|<[^>]*>|\S+', lines[i])) or [None]
    token = draw(st.sampled_from(tokens))
    new = draw(st.sampled_from(TOKENS)).encode()
    lines[i] = new if token is None else lines[i][:token.start()] + new + lines[i][token.end():]
    return b"\n".join(lines)


@BUDGETS
def test_turtle_rules(tmp_path, budget):
    @budget
    @given(mutated_turtle())
    def check(data):
        path = tmp_path / "o.ttl"
        path.write_bytes(data)
        onto = only_kgattr_errors(load_ontology, path)
        if onto is not None:                      # what reads must also check, list and write back
            only_kgattr_errors(RuleSet(onto).violations, SAMPLE)
            list_rules(onto)
            to_turtle(onto)
    check()
