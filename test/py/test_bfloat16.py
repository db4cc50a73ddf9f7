"""bfloat16 round-trips as bfloat16: torch in, torch out; ml_dtypes without torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import torch

import vtpu


def test_torch_bfloat16_comes_back_as_torch_bfloat16(client, ns):
    t = torch.tensor([[1.5, -2.25, 3e-3], [1e30, 0.0, -0.0]], dtype=torch.bfloat16)
    client.cput(f"{ns}.1.1/1.1.1/1.1.1", t)
    got = client.cget(f"{ns}.1.1/1.1.1/1.1.1")
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16 and got.shape == t.shape
    assert torch.equal(got.view(torch.int16), t.view(torch.int16))  # bit for bit
    got[0, 0] = 7  # writable, owns its memory
    batch = client.cget_batch([f"{ns}.1.1/1.1.1/1.1.1", f"{ns}.1.1/1.1.1/1.1.1"])
    assert batch.values.dtype == torch.bfloat16 and torch.equal(batch.values[1].view(torch.int16), t.view(torch.int16))


def test_ml_dtypes_bfloat16_round_trips(client, ns):
    a = np.array([0.5, 1.0, -7.0], dtype=ml_dtypes.bfloat16)
    client.cput(f"{ns}.2.1/1.1.1/1.1.1", a)
    got = client.cget(f"{ns}.2.1/1.1.1/1.1.1")
    assert got.dtype == torch.bfloat16  # this process imported torch
    assert got.float().tolist() == [0.5, 1.0, -7.0]
    client.cput(f"{ns}.3.1/1.1.1/1.1.1", np.array([1.0, 2.0], np.float32), dtype="bfloat16")  # rounds
    assert client.cget(f"{ns}.3.1/1.1.1/1.1.1").float().tolist() == [1.0, 2.0]


def test_without_torch_bfloat16_is_an_ml_dtypes_array(sidecar):
    code = textwrap.dedent(
        f"""
        import sys, numpy as np, ml_dtypes, vtpu
        with vtpu.connect({sidecar.address!r}, timeout=10) as c:
            c.cput("9.9.9/9.9.9/9.9.1", np.array([1.25, -3.0], dtype=ml_dtypes.bfloat16))
            got = c.cget("9.9.9/9.9.9/9.9.1")
        assert "torch" not in sys.modules
        assert got.dtype == ml_dtypes.bfloat16, got.dtype
        assert got.astype(np.float32).tolist() == [1.25, -3.0]
        print("ok")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_bfloat16_dtype_is_ml_dtypes():
    assert vtpu.protocol.numpy_dtype("bfloat16") == np.dtype(ml_dtypes.bfloat16)
