"""Model directories: written whole or not at all, damage named in one line, a text cache that never fails a job."""
import logging
import sqlite3
import threading

import numpy as np


def test_a_corrupt_text_cache_is_moved_aside_and_rebuilt(tiny_bert, tmp_path, caplog):
    from kgattr.text import TextEncoder

    encoder = TextEncoder(tiny_bert, cache_dir=tmp_path)
    first = encoder.encode(["red shirt", "blue jeans"])
    [file] = tmp_path.glob("text-*.sqlite")
    file.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING):
        again = encoder.encode(["red shirt", "blue jeans"])
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert [r.message.count("is corrupt") for r in caplog.records] == [1]
    assert file.with_name(file.name + ".corrupt").exists()
    db = sqlite3.connect(file)
    assert db.execute("SELECT COUNT(*) FROM emb").fetchone()[0] == 2
    db.close()


def test_an_unwritable_cache_folder_is_bypassed(tiny_bert, tmp_path, caplog):
    from kgattr.text import TextEncoder

    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        out = TextEncoder(tiny_bert, cache_dir=blocker / "cache").encode(["red shirt"])
    assert out.shape[0] == 1 and [r.message.count("cache not used") for r in caplog.records] == [1]


def test_threads_share_one_cache(tiny_bert, tmp_path):
    from kgattr.text import TextEncoder

    texts = [f"shirt number {i}" for i in range(40)]
    errors, results = [], {}

    def work(i):
        try:
            results[i] = TextEncoder(tiny_bert, cache_dir=tmp_path, batch_size=4).encode(texts[i % 3::2])
        except Exception as e:                      # noqa: BLE001 - any failure fails the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    [file] = tmp_path.glob("text-*.sqlite")
    db = sqlite3.connect(file)
    assert db.execute("SELECT COUNT(*) FROM emb").fetchone()[0] == len(set(texts[0::2]) | set(texts[1::2]))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
