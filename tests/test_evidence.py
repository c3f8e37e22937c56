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
