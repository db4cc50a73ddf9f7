"""vTPU quickstart: store text and tensors at coordinates, range over them, fetch a batch.

Run from a built checkout (`make`): python examples/quickstart.py
"""

import numpy as np

import vtpu

# Name the coordinate components so code reads like the model it describes.
kv = vtpu.Layout("layer.head.pos/qkv.batch.embed/*.*.*", qkv=["query", "key", "value"])

with vtpu.connect() as client:  # starts a private local sidecar; closed at the end
    print("sidecar:", client.ping()["engine"], "at", client.address)

    # One text scroll and one tensor batch (8 positions x a 4-wide key vector each).
    client.cput("1.1.1/1.1.1/1.1.1", "hello, coordinates")
    coords = kv.coords(layer=0, head=3, pos=np.arange(8), qkv="key", batch=0, embed=0)
    keys = np.random.default_rng(0).random((8, 4), dtype=np.float32)
    print("written:", client.cput_batch(coords, keys))

    # Range: every key of layer 0, positions [2:6), in coordinate order.
    hits = client.crange(kv.pattern(layer=0, qkv="key", pos=(2, 6)))
    for c, v in zip(hits.coords, hits.values):
        print(kv.describe(c), v.round(3))

    # Batch fetch, with a missing coordinate on the end.
    probe = np.vstack([coords[:2], kv.coord(layer=9, head=0, pos=0, qkv="value", batch=0, embed=0)])
    values, found = client.cget_batch(probe)
    print("found:", found, "first row equal:", np.array_equal(values[0], keys[0]))
    print(client.cget("1.1.1/1.1.1/1.1.1"))
