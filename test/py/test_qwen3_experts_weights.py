"""Hooked experts whose torch weights change: re-uploaded before the next forward, never stale;
gradients through the sidecar's experts (inputs, routing weights, expert weights) equal torch's."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

import vtpu.integrations.qwen3 as vq  # noqa: E402
from test_qwen3_experts import prompts, tiny_model  # noqa: E402
from vtpu.integrations.experts import ExpertsBinding, binding  # noqa: E402
from vtpu.integrations.experts_op import swiglu_experts  # noqa: E402


@pytest.fixture
def hooked(client):
    m = tiny_model()
    vq.hook(m, client, "fp32", layer_base=300)
    yield m
    vq.unhook(m)


def logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


def uploads(model) -> list[int]:
    return [binding(e).uploads for e in vq.expert_modules(model).values()]


def plain(model, ids) -> torch.Tensor:
    """The model's logits with transformers' own experts (hooked again after)."""
    client = binding(vq.expert_modules(model)[0]).client
    vq.unhook(model)
    try:
        return logits(model, ids)
    finally:
        vq.hook(model, client, "fp32", layer_base=300)


def test_load_state_dict_is_uploaded_again(hooked):
    ids = prompts(2, 12)
    other = tiny_model(seed=5)
    want = logits(other, ids)
    assert (logits(hooked, ids) - want).abs().max().item() > 1e-2  # different weights really differ
    hooked.load_state_dict(other.state_dict())
    assert (logits(hooked, ids) - want).abs().max().item() < 1e-4
    assert uploads(hooked) == [2, 2, 2, 2]
    logits(hooked, ids)
    assert uploads(hooked) == [2, 2, 2, 2]  # unchanged weights: no upload
    hooked.load_state_dict(tiny_model(seed=6).state_dict(), assign=True)  # new tensors, not copies
    assert (logits(hooked, ids) - logits(tiny_model(seed=6), ids)).abs().max().item() < 1e-4


def test_in_place_edits_are_uploaded_again(hooked):
    ids = prompts(2, 12)
    before = logits(hooked, ids)
    experts = vq.expert_modules(hooked)[1]
    with torch.no_grad():
        experts.down_proj[3].mul_(3.0)  # one expert of one layer
    after = logits(hooked, ids)
    assert uploads(hooked) == [1, 2, 1, 1]  # only the edited layer went again
    assert (after - before).abs().max().item() > 1e-3
    assert (after - plain(hooked, ids)).abs().max().item() < 1e-4
    experts = vq.expert_modules(hooked)[1]
    experts.gate_up_proj.data.mul_(0.5)  # .data bypasses the version counter: refresh says so
    assert vq.refresh(hooked) == 4
    assert (logits(hooked, ids) - plain(hooked, ids)).abs().max().item() < 1e-4


def test_gradients_match_torch_and_a_training_step_reaches_the_sidecar(client):
    ids = prompts(2, 10)
    ref, ours = tiny_model(), tiny_model()
    vq.hook(ours, client, "fp32", layer_base=320)
    try:
        for m in (ref, ours):
            m.train()
            m(ids, labels=ids).loss.backward()
        grads = 0
        for (name, a), (_, b) in zip(ref.named_parameters(), ours.named_parameters()):
            scale = max(float(a.grad.abs().max()), 1e-12)
            assert float((a.grad - b.grad).abs().max()) / scale <= 1e-4, name
            grads += "experts" in name
        assert grads == 8  # gate_up_proj and down_proj of 4 layers
        for m in (ref, ours):
            torch.optim.SGD(m.parameters(), lr=0.5).step()
            m.eval()
        assert (logits(ours, ids) - logits(ref, ids)).abs().max().item() < 1e-4  # the step was uploaded
        assert uploads(ours) == [2, 2, 2, 2]
    finally:
        vq.unhook(ours)


def test_backward_formula_matches_autograd():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 8, generator=g, requires_grad=True)
    idx = torch.tensor([[0, 2], [1, 2], [2, 0], [3, 1], [0, 3], [1, 0], [2, 3]])
    w = torch.rand(7, 2, generator=g, requires_grad=True)
    gu = torch.randn(4, 12, 8, generator=g, requires_grad=True)
    dn = torch.randn(4, 8, 6, generator=g, requires_grad=True)
    gy = torch.randn(7, 8, generator=g)
    want = torch.autograd.grad(swiglu_experts(x, idx, w, gu, dn), (x, w, gu, dn), gy)
    got = torch.ops.vtpu.experts_backward(gy, x, idx, w, gu, dn, [True, True, True, True])
    for a, b in zip(want, got):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    only_x = torch.ops.vtpu.experts_backward(gy, x, idx, w, gu, dn, [True, False, False, False])
    assert torch.allclose(only_x[0], want[0], atol=1e-5) and [t.numel() for t in only_x[1:]] == [0, 0, 0]


def test_released_weights_refuse_gradients(client):
    m = tiny_model()
    vq.hook(m, client, "fp32", layer_base=340, release=True)
    try:
        m.train()
        loss = m(prompts(1, 6), labels=prompts(1, 6)).loss
        with pytest.raises(RuntimeError, match="released"):
            loss.backward()
        with pytest.raises(ValueError, match="freed"):
            vq.refresh(m)
    finally:
        for layer in range(340, 344):
            client.experts_drop(layer)


def test_a_binding_without_a_torch_module_runs(client):
    """Weights streamed straight into the sidecar (no torch copy ever): nothing to compare or upload."""
    m = tiny_model()
    ids = prompts(1, 6)
    want = logits(m, ids)
    vq.hook(m, client, "fp32", layer_base=360, release=True)
    for i, e in vq.expert_modules(m).items():
        e.vtpu_experts = ExpertsBinding(layer=360 + i, client=client, format="fp32", num_experts=8, released=True)
    try:
        assert (logits(m, ids) - want).abs().max().item() < 1e-4
        with pytest.raises(ValueError, match="no experts module"):
            ExpertsBinding(layer=360, client=client, format="fp32", num_experts=8).upload()
    finally:
        for layer in range(360, 364):
            client.experts_drop(layer)
