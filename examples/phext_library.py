"""Store real documents at phext coordinates, range over them, and round-trip a .phext file.

Each text file becomes a book of scrolls: document d, paragraph p lives at
``1.1.1/1.1.d/1.1.p``; a 64-wide float32 bag-of-words vector for each paragraph lives in a
second library (``2.1.1/1.1.d/1.1.p``). Defaults to the concept documents in ../shared/seeds
(falls back to this repository's README). Run: python examples/phext_library.py [FILES...]
"""

import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

import vtpu

ROOT = Path(__file__).resolve().parents[1]


def documents(argv):
    files = [Path(a) for a in argv] or sorted((ROOT.parent / "shared" / "seeds").glob("*.txt")) or [ROOT / "README.md"]
    return [(f.name, [p.strip() for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()][:999]) for f in files[:999]]


def bag_of_words(text, width=64):
    v = np.zeros(width, np.float32)
    for word in text.lower().split():
        v[zlib.crc32(word.encode()) % width] += 1
    return v / max(1.0, float(np.linalg.norm(v)))


docs = documents(sys.argv[1:])
with vtpu.connect() as vt:
    coords, texts = [], []
    for d, (_, paras) in enumerate(docs, start=1):
        coords += [(1, 1, 1, 1, 1, d, 1, 1, p) for p in range(1, len(paras) + 1)]
        texts += paras
    coords = np.array(coords, dtype=np.uint32)
    vt.cput_batch(coords, texts)                                      # text scrolls
    vectors = np.stack([bag_of_words(t) for t in texts])
    vt.cput_batch(coords + np.array([1, 0, 0, 0, 0, 0, 0, 0, 0], np.uint32), vectors)   # tensors
    print(f"stored {len(texts)} paragraphs of {len(docs)} documents and their vectors")

    # The second paragraph of every document: a leading-wildcard range, served by the index.
    second = vt.crange("1.1.1/1.1.*/1.1.2")
    for c, text in zip(second.coords, second.values):
        print(f"  {vtpu.format_coord(c)}  {text[:60]!r}")

    # One round trip for three instructions: find every second paragraph, step to the third, read it.
    prog = vtpu.Program()
    third = prog.cdelta(prog.crange("1.1.1/1.1.*/1.1.2", values=False), offset=[0, 0, 0, 0, 0, 0, 0, 0, 1])
    prog.cget(third)
    values, found = vt.run_program(prog).last
    print(f"program: {int(found.sum())} third paragraphs in one round trip, e.g. {values[0][:40]!r}")

    # Document 1 as a node of the hierarchy: how many scrolls sit under it.
    node = vt.chier("1.1.1/1.1.1/1.1.1", direction="up", depth=3)[-1]
    print("document 1:", node["pattern"], node["count"], "scrolls")

    # Read back a batch (text and tensor) and check it against what was written.
    got, found = vt.cget_batch(coords[:3])
    vecs, _ = vt.cget_batch(coords[:3] + np.array([1, 0, 0, 0, 0, 0, 0, 0, 0], np.uint32))
    assert found.all() and list(got) == texts[:3] and np.allclose(vecs, vectors[:3])

    # Export library 1 to a .phext file and import it into a fresh sidecar: same checksum.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "library.phext"
        checksum = vt.save_phext(path, "1.*.*/*.*.*/*.*.*")
        with vtpu.connect() as fresh:
            fresh.load_phext(path)
            assert fresh.save_phext(Path(tmp) / "again.phext") == checksum
        print(f"phext round trip: {path.stat().st_size} bytes, xxh3-128 {checksum}")
