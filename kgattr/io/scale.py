"""Larger catalogs made from a real one, to measure how kgattr's cost grows with the number of products.

:func:`resample` draws a real catalog's products again and again under new SKUs with lightly perturbed text: the
categories, the known values and their co-occurrence, the text lengths and the listing order stay those of the
real catalog, so time and memory grow as they would on a larger catalog of the same kind. The generated products
are copies: **accuracy measured on a generated catalog means nothing**, only its cost does.
"""
from __future__ import annotations

import random
from typing import Iterator

from .catalog import Catalog, Product

SEPARATOR = "~"        # a generated SKU is SOURCE_SKU~COPY


def copies(n: int, size: int, seed: int) -> list[int]:
    """How many times each of ``n`` source products is drawn for ``size`` products: every product ``size // n``
    times, and the first ``size % n`` of a shuffle (by ``seed``) once more. The draws of a smaller size are among
    those of a larger one, so its texts are too (and a text cache filled at one size is warm for the smaller).

    Returns:
        (n,) counts summing to ``size``.
    """
    counts, order = [size // n] * n, list(range(n))
    random.Random(seed).shuffle(order)
    for i in order[:size % n]:
        counts[i] += 1
    return counts


def perturb(text: str, rng: random.Random) -> str:
    """``text`` with a few word-level edits: about one word in twenty dropped, two neighbouring words swapped,
    one word said twice. Never the same text when it has a word."""
    words = text.split(" ")
    if not text.strip():
        return text
    words = [w for w in words if rng.random() >= 0.05] or words[:1]
    if len(words) > 1:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    i = rng.randrange(len(words))
    words.insert(i, words[i])                     # the repeated word makes every copy's text differ from its source
    return " ".join(words)


def resample(catalog: Catalog, size: int, seed: int) -> Iterator[Product]:
    """``size`` products drawn from ``catalog`` (see :func:`copies`), in its order, each source's copies together.

    Copy ``c`` of product ``s`` gets the SKU ``s~c``, its title and description perturbed (:func:`perturb`, seeded
    by ``seed``, ``s`` and ``c``), and keeps category, known values and extra fields. Deterministic; the products
    are made one at a time, so the output can be written as it comes.

    Args:
        catalog: the real catalog to draw from.
        size: products to generate (any number, smaller or larger than the catalog).
        seed: of the draw and of the edits.
    """
    counts = copies(len(catalog), size, seed)
    for s, (product, count) in enumerate(zip(catalog, counts)):
        for c in range(count):
            rng = random.Random(f"{seed}:{s}:{c}")
            yield Product(f"{product.sku}{SEPARATOR}{c}", perturb(product.title, rng), perturb(product.description, rng),
                          product.category, dict(product.attributes), dict(product.extra))
