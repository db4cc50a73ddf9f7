"""The dense half in int8 (``vtpu.integrations.dense_int8``): per-row int8 weights against the
float layer they came from, the swap inside a Qwen3-MoE model, and the refusals."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import weakref  # noqa: E402

from vtpu.integrations import dense_int8  # noqa: E402
from vtpu.integrations import qwen3_models as qm  # noqa: E402
from vtpu.integrations.dense_int8 import Int8Linear, attention_and_head, quantize_dense  # noqa: E402


def _dequantised(linear: torch.nn.Linear) -> torch.Tensor:
    """The weights int8 per row represents: round(w / s) * s with s = max|w| / 127 per row."""
    w = linear.weight.detach().float()
    s = w.abs().amax(1, keepdim=True) / 127
    return torch.round(w / s) * s


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_its_dequantised_weights(dtype: torch.dtype, bias: bool) -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 96, bias=bias).to(dtype)
    q = Int8Linear(lin)
    x = torch.randn(3, 5, 256).to(dtype)
    with torch.no_grad():
        y = q(x)
        ref = torch.nn.functional.linear(x.float(), _dequantised(lin), None if lin.bias is None else lin.bias.float())
    assert y.shape == (3, 5, 96) and y.dtype == dtype
    # what is left is the activations' 7-bit rounding per call (about 1 %); a wrong row layout misses by O(1)
    err = ((y.float() - ref).norm() / ref.norm()).item()
    assert err < 0.03, err
    assert q.nbytes == 96 * 256 + 4 * 96 + (4 * 96 if bias else 0)


def test_all_zero_row_and_one_row_input() -> None:
    lin = torch.nn.Linear(64, 8, bias=False)
    with torch.no_grad():
        lin.weight[3] = 0
    q = Int8Linear(lin)
    with torch.no_grad():
        y = q(torch.randn(64))
    assert y.shape == (8,) and torch.isfinite(y).all() and y[3] == 0


def test_refuses_gradients_and_wrong_width() -> None:
    q = Int8Linear(torch.nn.Linear(32, 16))
    with pytest.raises(RuntimeError, match="inference"):
        q(torch.randn(2, 32, requires_grad=True))
    with pytest.raises(ValueError, match="32 input features"):
        q(torch.randn(2, 31))
    with pytest.raises(ValueError, match="CPU weights"):
        Int8Linear(torch.nn.Linear(4, 4, device="meta"))


def test_quantize_dense_swaps_attention_and_lm_head() -> None:
    model = qm.build_model(qm.moe_config("tiny"), seed=0)
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and attention_and_head(n, m)]
    held = quantize_dense(model)
    swapped = {n for n, m in model.named_modules() if isinstance(m, Int8Linear)}
    assert swapped == set(names) and "lm_head" in swapped
    assert len(swapped) == 4 * model.config.num_hidden_layers + 1  # q, k, v, o per layer, and the head
    assert held == sum(m.nbytes for m in model.modules() if isinstance(m, Int8Linear))
    assert not any(".self_attn." in n and n.endswith("proj.weight") for n, _ in model.named_parameters())  # the float weights are gone
    assert all(not n.endswith(".gate.weight") or p.dtype == ref.dtype for n, p in model.named_parameters())  # routers stay float
    with torch.no_grad():
        out = model(input_ids=ids).logits
    # random weights make near-tied logits (top-1 is no measure here): the logits as a whole stay
    # close (measured 0.06 at the tiny shape, where 7-bit activations per tensor are coarse; a
    # model whose logits are unrelated gives about 1.4, √2)
    err = ((out - ref).norm() / ref.norm()).item()
    assert err < 0.15, err
    with pytest.raises(ValueError, match="no nn.Linear layer matched"):
        quantize_dense(model)  # a second time: nothing left to convert, said so


def test_each_float_layer_is_freed_as_soon_as_it_is_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dense half is never held twice: when a layer is converted, the float layers converted
    before it are gone already (not kept until the whole model is done)."""
    model = qm.build_model(qm.moe_config("tiny"), seed=0)
    converted: list[weakref.ref] = []
    alive_at_each: list[int] = []

    class Recording(dense_int8.Int8Linear):
        def __init__(self, linear: torch.nn.Linear) -> None:
            alive_at_each.append(sum(r() is not None for r in converted))
            super().__init__(linear)
            converted.append(weakref.ref(linear))

    monkeypatch.setattr(dense_int8, "Int8Linear", Recording)
    dense_int8.quantize_dense(model)
    assert len(alive_at_each) == 4 * model.config.num_hidden_layers + 1 and max(alive_at_each) == 0
