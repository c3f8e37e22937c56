import json

import pytest

from kgattr import Catalog, Product, read_catalog, write_catalog
from kgattr.exceptions import CatalogError


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_round_trip_keeps_extra_fields(tmp_path, catalog):
    path = tmp_path / "c.jsonl"
    write_catalog(catalog, path)
    back = read_catalog(path)
    assert [p.to_json() for p in back] == [p.to_json() for p in catalog]
    rec = {"sku": "x", "title": "t", "category": ["A"], "attributes": {}, "price": 10}
    write_lines(tmp_path / "e.jsonl", [json.dumps(rec)])
    assert read_catalog(tmp_path / "e.jsonl")["x"].extra == {"price": 10}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl.gz"])
def test_wide_and_compressed_round_trip(tmp_path, catalog, suffix):
    path = tmp_path / f"c{suffix}"
    write_catalog(catalog, path)
    back = read_catalog(path)
    assert len(back) == len(catalog)
    for a, b in zip(catalog, back):
        assert (a.sku, a.title, a.category, a.attributes) == (b.sku, b.title, b.category, b.attributes)


@pytest.mark.parametrize("line, message", [
    ('{"sku": "a", "title": ', "c.jsonl:2: malformed JSON"),
    ('{"title": "no sku"}', "c.jsonl:2: field 'sku': missing"),
    ('{"sku": 7}', "c.jsonl:2: field 'sku': expected a string"),
    ('{"sku": "b", "attributes": {"Fabric": 3}}', "c.jsonl:2: field 'attributes.Fabric': expected a string"),
    ('{"sku": "b", "category": "Apparel", "title": 5}', "c.jsonl:2: field 'title': expected a string"),
    ('{"sku": "ok"}', "duplicate SKU 'ok'"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, line, message):
    path = write_lines(tmp_path / "c.jsonl", ['{"sku": "ok"}', line])
    with pytest.raises(CatalogError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_catalog(path)


def test_missing_file(tmp_path):
    with pytest.raises(CatalogError, match="no such file"):
        read_catalog(tmp_path / "nope.jsonl")


def test_failed_write_leaves_previous_file(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    bad = Catalog([Product("a", attributes={"x": object()})])   # not JSON-serialisable
    with pytest.raises(TypeError):
        write_catalog(bad, path)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_written_files_get_the_usual_mode(tmp_path, catalog):
    import os

    path = tmp_path / "c.jsonl"
    write_catalog(catalog, path)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
