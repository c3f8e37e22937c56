import re

from hypothesis import given, settings
from hypothesis import strategies as st

from kgattr.engine.evidence import folded, stated_at, text_evidence

# ASCII words and punctuation; letters the regex folds to ASCII ones (the Kelvin sign matches k, the long s
# matches s, dotted and dotless i match i); word and other characters outside ASCII
LETTERS = "abcIiKkSs_09 -.,/()\"'\n" + "\u212a\u017f\u0130\u0131éÉ½…\u00a0’"


def regex_span(value: str, text: str):
    """What the text search answered before its ASCII shortcut: the reference."""
    m = re.compile(r"(?<![\w])" + re.escape(value) + r"(?![\w])", re.IGNORECASE).search(text)
    return m.span() if m else None


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(st.text(LETTERS, max_size=40), st.data())
def test_stated_at_finds_what_the_regex_finds(text, data):
    start = data.draw(st.integers(0, len(text)))
    value = data.draw(st.one_of(st.just(text[start:start + data.draw(st.integers(1, 6))] or "a"),
                                st.text(LETTERS, min_size=1, max_size=5)))
    for variant in (value, value.upper(), value.swapcase()):
        assert stated_at(variant, text, folded(text)) == regex_span(variant, text)


def test_text_evidence_quotes_the_first_whole_word_stated():
    assert text_evidence("red", "Bored Redwood", "A red shirt, red trim.") == "A red shirt, red trim."
    assert text_evidence("Size M", "Tee - size m", "") == "Tee - size m"
    assert text_evidence("cotton", "Shirt", "Cottonwood") is None


def test_known_values_found_by_their_runs_or_by_the_sorted_table_alike(catalog):
    import numpy as np

    from kgattr.engine.evidence import EvidenceFinder
    from kgattr.engine.graph import build_graph

    graph = build_graph(catalog)
    attributes = graph.attributes
    value_attribute = np.array([attributes.index(a) for a, _ in graph.values])
    rng = np.random.default_rng(0)
    rows = rng.integers(-1, len(graph.skus), size=(20, 5))
    asked = rng.integers(0, len(attributes), size=20)
    finder = EvidenceFinder(graph, attributes, value_attribute)
    assert rows.size < len(graph.skus)
    by_runs = finder._held(rows, asked)                     # fewer rows than products: no table yet
    assert finder.keys is None
    finder._held(np.zeros((len(graph.skus), 1), np.int64), asked[:1].repeat(len(graph.skus)))
    assert finder.keys is not None and np.array_equal(finder._held(rows, asked), by_runs)
    held = {(r, a) for r, v in zip(*graph.has_value) for a in [value_attribute[v]]}
    assert all((by_runs[m, j] >= 0) == ((rows[m, j], asked[m]) in held) for m in range(20) for j in range(5)
               if rows[m, j] >= 0) and (by_runs[rows < 0] == -1).all()
