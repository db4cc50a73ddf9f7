"""The sidecar's expert-load matrix (the dashboard's heatmap) is the hooked model's routing statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
import vtpu  # noqa: E402
import vtpu.integrations.qwen3 as vq  # noqa: E402
from test_qwen3_experts import prompts, tiny_model  # noqa: E402


def test_the_sidecar_counts_what_the_hooked_model_routed(fresh_sidecar):
    model = tiny_model()
    with vtpu.connect(fresh_sidecar.address, timeout=30) as c:
        assert "expert_load" not in c.metrics(details=True)["details"]  # nothing uploaded yet
        vq.hook(model, c, "fp32", layer_base=10)
        with torch.no_grad():
            model(prompts(2, 12))
            model(prompts(1, 5, seed=3))
        load = c.metrics(details=True)["details"]["expert_load"]
        stats = vq.routing_stats(model)
        assert load["layers"] == [stats[i]["layer"] for i in sorted(stats)] == [10, 11, 12, 13]
        assert np.array_equal(np.array(load["counts"]), vq.load_matrix(model))
        assert np.array(load["counts"]).sum() == 4 * (2 * 12 + 5) * 2  # layers x tokens x top-2
        vq.unhook(model)  # drops the layers: the sidecar forgets their load
        assert "expert_load" not in c.metrics(details=True)["details"]
        assert "details" not in c.metrics()  # only when asked for
