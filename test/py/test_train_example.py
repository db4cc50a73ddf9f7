"""examples/train_moe.py learns: a short run through vTPU attention and routing lowers the loss."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import vtpu  # noqa: E402
import vtpu.integrations as vi  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_moe.py"


def test_copy_task_loss_falls(sidecar: vtpu.Sidecar) -> None:
    spec = importlib.util.spec_from_file_location("train_moe", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with vtpu.connect(sidecar.address, timeout=30) as c:
        vi.set_default_client(c)
        try:
            losses = mod.train(30, n=6, batch_size=16, every=10)
        finally:
            vi.set_default_client(None)
    assert all(math.isfinite(x) for x in losses)
    assert losses[0] > 0.8 * math.log(11)  # starts near chance over 11 tokens
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses  # the copy is being learned
