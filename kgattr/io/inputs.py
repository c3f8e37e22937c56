"""Reading input files so that any bad input is one error line naming the file (and line, and field where there
is one): opening (gzip by its magic number), decoding UTF-8, naming unexpected values, and typed table cells as
text."""
from __future__ import annotations

import gzip
import io
import math
import re
import zlib
from typing import BinaryIO

from ..exceptions import CatalogError

GZIP_MAGIC = b"\x1f\x8b"
# decoded UTF-8 holds no lone surrogate: only a JSON escape of one (\ud800-\udfff) can make it
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def file_label(path) -> str:
    """``path`` as it goes into a one-line message: a name holding line breaks or undecodable bytes is escaped."""
    text = str(path)
    return text if text.isprintable() else repr(text)[1:-1]


def open_input(path, error=CatalogError) -> BinaryIO:
    """``path`` opened for reading bytes, through gzip when it starts with gzip's magic number (whatever its name).

    Raises:
        error: naming the file, when it is missing, a directory, unreadable, or named ``.gz`` but not gzip data.
    """
    name = file_label(path)
    try:
        f = open(path, "rb")
        magic = f.peek(2)[:2]
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except IsADirectoryError:
        raise error(f"{name}: is a directory, not a file") from None
    except (OSError, ValueError) as e:                  # ValueError: a NUL in the name
        raise error(f"{name}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    if magic != GZIP_MAGIC and str(path).lower().endswith(".gz"):
        f.close()
        raise error(f"{name}: named .gz but not gzip data")
    if magic == GZIP_MAGIC:
        f.close()
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 18)   # large reads: fewer zlib calls
    return f


# what a damaged gzip stream raises while it is read (OSError: gzip.BadGzipFile and plain read errors)
READ_ERRORS = (EOFError, OSError, zlib.error)


def read_input(path, error=CatalogError) -> bytes:
    """The bytes of ``path`` (see :func:`open_input`); damaged gzip data is an ``error`` naming the file."""
    with open_input(path, error) as f:
        try:
            return f.read()
        except READ_ERRORS as e:
            raise error(f"{file_label(path)}: damaged gzip data ({e})") from None


def decode_text(data: bytes, name: str, error=CatalogError, first_line: int = 1) -> str:
    """``data`` as UTF-8 text, less a byte-order mark; an error names the line and column of the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = first_line + data.count(b"\n", 0, e.start), e.start - data.rfind(b"\n", 0, e.start)
        raise error(f"{name}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at column {column})") from None
    return text[1:] if first_line == 1 and text.startswith("\ufeff") else text


def describe(value) -> str:
    """What an unexpected JSON (or cell) value is, for a message: its type, and a short number itself."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    if type(value) in kinds:
        return kinds[type(value)]
    if isinstance(value, float) or (isinstance(value, int) and value.bit_length() < 64):
        return f"the number {value!r}"
    return "a number" if isinstance(value, int) else f"a {type(value).__name__}"


def bad_text(value, field: str = "") -> str | None:
    """The field of the first string (key or value) in a parsed JSON value that cannot be written as UTF-8 (a lone
    surrogate, from a ``\\ud800`` escape); None when there is none."""
    if isinstance(value, str):
        return None if value.isascii() or encodable(value) else field
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        sub = f"{field}[{key}]" if isinstance(key, int) else f"{field}.{key}" if field else key
        found = sub if isinstance(key, str) and not encodable(key) else bad_text(item, sub)
        if found is not None:
            return found
    return None


def encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (it holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cell_text(value) -> str | None:
    """A typed cell (Parquet, DataFrame) as the text a person would have written: 2012.0 -> "2012", True ->
    "True"; None when missing (None, NaN, NA, NaT). Raises ValueError saying why for anything else."""
    import datetime
    import decimal

    import numpy as np
    import pandas as pd

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):                   # a Parquet list cell
        value = value.tolist()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("bytes that are not UTF-8 text") from None
    if isinstance(value, str):
        if not (value.isascii() or encodable(value)):
            raise ValueError("not valid Unicode text (a lone surrogate)")
        return value
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return None
        if not value.is_finite():
            raise ValueError(f"not a finite number ({value})")
        return format(value.normalize(), "f")
    if isinstance(value, float):
        if value != value:
            return None
        if not math.isfinite(value):
            raise ValueError(f"not a finite number ({value})")
        return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)
    if isinstance(value, datetime.datetime) and value.tzinfo is None and value.time() == datetime.time():
        value = value.date()
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise ValueError(f"expected text or a number, got {describe(value)}")
