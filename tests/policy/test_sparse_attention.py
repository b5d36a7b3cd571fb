"""Sparse attention: every backend against the dense reference on the same selection, edge cases,
and the learned indexer."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from ast_robot.policy.attention import (
    CPU_GATHER_MIN_LEN,
    SparseAttention,
    attend,
    collect_indexer_loss,
    dense_attention,
    flex_attention,
    max_candidate_blocks,
    resolve_backend,
    select_blocks,
)

# (batch, seq_len, num_global, block_size, window, top_k, pad_last): pad_last is how many trailing
# tokens of the first sample are padded.
SHAPES = [
    pytest.param((2, 40, 2, 4, 4, 2, 0), id="basic"),
    pytest.param((3, 41, 1, 4, 4, 2, 7), id="partial-block-padded"),
    pytest.param((2, 7, 1, 4, 16, 2, 0), id="shorter-than-window"),
    pytest.param((2, 9, 2, 4, 16, 2, 3), id="shorter-than-window-padded"),
    pytest.param((2, 30, 0, 4, 4, 50, 0), id="top-k-above-length"),
    pytest.param((2, 100, 3, 8, 8, 3, 20), id="padded-batch"),
    pytest.param((1, 130, 1, 16, 20, 1, 0), id="wide-window"),
    pytest.param((3, 65, 0, 1, 2, 5, 9), id="token-blocks"),
]


def _random_case(batch, seq_len, num_global, block_size, window, top_k, pad_last, *, seed=0):
    """Return a layer, its input x (B, L, D), key padding mask (B, L) and a selection."""
    torch.manual_seed(seed)
    layer = SparseAttention(
        16, 2, num_global=num_global, block_size=block_size, window=window, top_k=top_k
    )
    x = torch.randn(batch, seq_len, 16)
    pad = torch.zeros(batch, seq_len, dtype=torch.bool)
    if pad_last:
        pad[0, seq_len - pad_last :] = True
    with torch.no_grad():
        selection, _ = layer.select(x, ~pad)
    return layer, x, pad, selection


def _qkv(batch, seq_len, heads=2, head_dim=8, *, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, seq_len, heads, head_dim, generator=generator).requires_grad_()
        for _ in range(3)
    ]


def _forward_backward(backend, q, k, v, selection, key_valid):
    """Run attend and backpropagate a fixed random projection; return output and q, k, v grads."""
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = attend(q, k, v, selection, key_valid, backend)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    (out * weights).sum().backward()
    return out.detach(), q.grad, k.grad, v.grad


@pytest.mark.parametrize("shape", SHAPES)
def test_gather_matches_dense(shape):
    _, _, pad, selection = _random_case(*shape)
    batch, seq_len = pad.shape
    q, k, v = _qkv(batch, seq_len)
    dense = _forward_backward("dense", q, k, v, selection, ~pad)
    gather = _forward_backward("gather", q, k, v, selection, ~pad)
    for name, expected, actual in zip(["out", "dq", "dk", "dv"], dense, gather):
        assert torch.allclose(actual, expected, atol=1e-5, rtol=0), f"{name} differs"


def test_gather_matches_dense_random_shapes():
    """A seeded sweep over random lengths, block sizes, windows, top-k and padding."""
    rng = torch.Generator().manual_seed(123)
    for trial in range(25):
        block_size = int(torch.randint(1, 17, (1,), generator=rng))
        num_global = int(torch.randint(0, 4, (1,), generator=rng))
        seq_len = num_global + int(torch.randint(1, 120, (1,), generator=rng))
        window = int(torch.randint(0, 40, (1,), generator=rng))
        top_k = int(torch.randint(0, 8, (1,), generator=rng))
        batch = int(torch.randint(1, 4, (1,), generator=rng))
        pad_last = int(torch.randint(0, seq_len + 1, (1,), generator=rng))
        shape = (batch, seq_len, num_global, block_size, window, top_k, pad_last)

        _, _, pad, selection = _random_case(*shape, seed=trial)
        q, k, v = _qkv(batch, seq_len, seed=trial)
        dense = _forward_backward("dense", q, k, v, selection, ~pad)
        gather = _forward_backward("gather", q, k, v, selection, ~pad)
        for name, expected, actual in zip(["out", "dq", "dk", "dv"], dense, gather):
            assert torch.allclose(actual, expected, atol=1e-5, rtol=0), f"{shape}: {name} differs"


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_backends_match_dense(shape):
    """The whole layer (projections included), input and parameter gradients."""
    layer, x, pad, selection = _random_case(*shape)
    results = {}
    for backend in ("dense", "gather", "auto"):
        layer.zero_grad()
        x_in = x.clone().requires_grad_()
        out = layer(x_in, pad, selection=selection, backend=backend)
        out.square().sum().backward()
        results[backend] = (out.detach(), x_in.grad, layer.qkv.weight.grad.clone())
    for backend in ("gather", "auto"):
        for name, expected, actual in zip(["out", "dx", "dW"], results["dense"], results[backend]):
            assert torch.allclose(actual, expected, atol=1e-5, rtol=0), f"{backend} {name} differs"


@pytest.mark.parametrize("shape", SHAPES[:6])
def test_flex_forward_matches_dense(shape):
    """FlexAttention's eager reference on CPU, forward only (it has no CPU backward)."""
    _, _, pad, selection = _random_case(*shape)
    batch, seq_len = pad.shape
    q, k, v = (t.detach() for t in _qkv(batch, seq_len))
    expected = dense_attention(q, k, v, selection, ~pad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the eager reference warns that it is slow
        actual = flex_attention(q, k, v, selection, ~pad, compiled=False)
    valid = ~pad
    assert torch.allclose(actual[valid], expected[valid], atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention training needs CUDA")
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_flex_matches_dense_on_cuda(shape):
    _, _, pad, selection = _random_case(*shape)
    batch, seq_len = pad.shape
    selection.key_blocks = selection.key_blocks.cuda()
    selection.key_block_valid = selection.key_block_valid.cuda()
    q, k, v = (t.detach().cuda() for t in _qkv(batch, seq_len))
    dense = _forward_backward("dense", q, k, v, selection, (~pad).cuda())
    flex = _forward_backward("flex", q, k, v, selection, (~pad).cuda())
    for name, expected, actual in zip(["out", "dq", "dk", "dv"], dense, flex):
        assert torch.allclose(actual, expected, atol=1e-4, rtol=0), f"{name} differs"


@pytest.mark.parametrize("shape", SHAPES)
def test_rows_with_keys_matches_mask(shape):
    from ast_robot.policy.attention import _rows_with_keys

    _, _, pad, selection = _random_case(*shape)
    pad[-1] = True  # a fully padded sequence too
    expected = (selection.dense_mask() & ~pad[:, None, :]).any(-1)
    assert torch.equal(_rows_with_keys(selection, ~pad), expected)


def test_flex_on_cpu_raises():
    _, _, pad, selection = _random_case(2, 40, 2, 4, 4, 2, 0)
    q, k, v = _qkv(2, 40)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        attend(q, k, v, selection, ~pad, "flex")


def test_auto_picks_by_length_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu, 64, 64) == "dense"
    assert resolve_backend("auto", cpu, CPU_GATHER_MIN_LEN, 64) == "gather"
    assert resolve_backend("auto", cpu, 16384, 4) == "dense"  # blocks too small to pay off
    assert resolve_backend("gather", cpu, 8, 4) == "gather"


def test_unknown_backend_rejected():
    with pytest.raises(ValueError, match="unknown attention backend"):
        SparseAttention(16, 2, backend="sparse")


def test_selection_has_no_duplicate_keys():
    _, _, pad, selection = _random_case(2, 100, 3, 8, 8, 3, 20)
    radius = 1
    for b in range(2):
        for query_block in range(selection.num_blocks):
            blocks = selection.key_blocks[b, query_block][selection.key_block_valid[b, query_block]]
            assert len(set(blocks.tolist())) == len(blocks)
            chosen = selection.key_blocks[b, query_block, selection.num_local :]
            chosen_valid = selection.key_block_valid[b, query_block, selection.num_local :]
            for block in chosen[chosen_valid].tolist():
                assert abs(block - query_block) > radius, "a selected block repeats a local one"


def test_dense_mask_counts_each_key_once():
    _, _, pad, selection = _random_case(1, 2 + 40, 2, 4, 4, 2, 0)  # 10 whole blocks
    mask = selection.dense_mask()[0]
    num_global = 2
    assert mask[:num_global].all(), "global queries attend everywhere"
    assert mask[:, :num_global].all(), "every query attends the global tokens"
    # A middle query block: 3 local blocks + 2 selected blocks of 4 tokens, plus the globals.
    middle_query = num_global + 4 * 4
    assert int(mask[middle_query].sum()) == num_global + (3 + 2) * 4


def test_top_k_clamped_to_candidates():
    _, _, pad, selection = _random_case(2, 30, 0, 4, 4, 50, 0)
    num_blocks = math.ceil(30 / 4)
    assert selection.num_selected == max_candidate_blocks(30, 4, 1) == num_blocks - 2
    # With top_k above the candidates every query block attends every block.
    assert selection.selects_all_candidates
    assert selection.block_allowed().all()


def test_sparse_selection_not_marked_complete():
    _, _, _, selection = _random_case(2, 100, 3, 8, 8, 3, 0)
    assert not selection.selects_all_candidates
    assert not selection.block_allowed().all()


def test_always_clamped_top_k_warns():
    with pytest.warns(UserWarning, match="always clamped"):
        SparseAttention(16, 2, num_global=1, block_size=4, window=4, top_k=3, max_len=1 + 4 * 4)


def test_reachable_top_k_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SparseAttention(16, 2, num_global=1, block_size=4, window=4, top_k=2, max_len=1 + 4 * 8)


def test_no_indexer_when_nothing_to_select():
    torch.manual_seed(0)
    layer = SparseAttention(16, 2, num_global=1, block_size=4, window=16, top_k=2)
    layer.train()
    out = layer(torch.randn(2, 9, 16))
    assert out.shape == (2, 9, 16)
    assert layer.indexer_loss is None
    assert layer.last_selection.num_selected == 0


@pytest.mark.parametrize("backend", ["dense", "gather"])
def test_padding_does_not_leak(backend):
    layer, x, pad, _ = _random_case(3, 41, 1, 4, 4, 2, 7)
    x_changed = x.clone()
    x_changed[pad] = 1000.0 * torch.randn(int(pad.sum()), 16)
    x_in = x_changed.clone().requires_grad_()

    reference = layer(x, pad, backend=backend)
    out = layer(x_in, pad, backend=backend)
    out.square().sum().backward()

    valid = ~pad
    assert torch.allclose(out[valid], reference[valid], atol=1e-5, rtol=0)
    assert torch.equal(out[pad], torch.zeros_like(out[pad]))
    assert torch.equal(x_in.grad[pad], torch.zeros_like(x_in.grad[pad]))


@pytest.mark.parametrize("backend", ["dense", "gather"])
def test_fully_padded_sequence_gives_zeros(backend):
    layer, x, _, _ = _random_case(2, 24, 2, 4, 4, 2, 0)
    pad = torch.zeros(2, 24, dtype=torch.bool)
    pad[1] = True  # the second sequence is all padding, global tokens included
    x_in = x.clone().requires_grad_()
    layer.train()
    out = layer(x_in, pad, backend=backend)
    loss = out.square().sum() + collect_indexer_loss(layer)
    loss.backward()

    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert torch.isfinite(x_in.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)


def test_selection_ignores_padded_values():
    layer, x, pad, selection = _random_case(3, 41, 1, 4, 4, 2, 7)
    x_changed = x.clone()
    x_changed[pad] = float("nan")
    with torch.no_grad():
        changed, _ = layer.select(x_changed, ~pad)
    assert torch.equal(changed.key_blocks, selection.key_blocks)


def test_select_blocks_without_scores_uses_local_window():
    key_valid = torch.ones(1, 20, dtype=torch.bool)
    selection = select_blocks(None, key_valid, num_global=0, block_size=4, local_radius=1, top_k=2)
    assert selection.num_selected == 0
    allowed = selection.block_allowed()[0]
    expected = (torch.arange(5)[:, None] - torch.arange(5)[None, :]).abs() <= 1
    assert torch.equal(allowed, expected)


def test_layer_on_plain_token_sequence():
    """The layer works on any (B, L, D) sequence with leading global tokens, as a ViT uses it."""
    torch.manual_seed(0)
    layer = SparseAttention(32, 4, num_global=5, block_size=8, window=8, top_k=2)
    x = torch.randn(2, 5 + 64, 32)
    out = layer(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_sequence_of_only_globals_rejected():
    layer = SparseAttention(16, 2, num_global=3)
    with pytest.raises(ValueError, match="no regular token"):
        layer(torch.randn(1, 3, 16))


# ---------------------------------------------------------------------------------------------
# The indexer learns
# ---------------------------------------------------------------------------------------------


def _topic_batch(generator, prototypes, batch, num_blocks, block_size):
    """Tokens (B, nb * bs, D): each block repeats one random prototype, plus noise."""
    topics = torch.randint(len(prototypes), (batch, num_blocks), generator=generator)
    x = prototypes[topics].repeat_interleave(block_size, dim=1)
    return x + 0.3 * torch.randn(x.shape, generator=generator)


def _topk_overlap(layer, x) -> float:
    """Mean share of the indexer's top-k blocks that are also the dense attention's top-k."""
    with torch.no_grad():
        batch, seq_len, dim = x.shape
        key_valid = torch.ones(batch, seq_len, dtype=torch.bool)
        selection, scores = layer.select(x, key_valid)
        q, k, _ = layer.qkv(x).view(batch, seq_len, 3, layer.num_heads, layer.head_dim).unbind(2)
        logits = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(layer.head_dim)
        probs = logits.softmax(-1).mean(1)  # (B, L, L)
        num_blocks, block_size = selection.num_blocks, layer.block_size
        block_mass = probs.view(batch, num_blocks, block_size, num_blocks, block_size).sum((2, 4))
        block_ids = torch.arange(num_blocks)
        local = (block_ids[:, None] - block_ids[None, :]).abs() <= layer.local_radius
        block_mass = block_mass.masked_fill(local, float("-inf"))
        dense_top = block_mass.topk(layer.top_k, dim=-1).indices  # (B, nb, k)
        chosen = selection.key_blocks[..., selection.num_local :]  # (B, nb, k)
        hits = (dense_top[..., :, None] == chosen[..., None, :]).any(-1).float()
        return float(hits.mean())


def test_indexer_learns_attention_pattern():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    dim, block_size, num_blocks = 16, 4, 16
    layer = SparseAttention(dim, 2, num_global=0, block_size=block_size, window=4, top_k=2,
                            indexer_heads=4, indexer_dim=8, indexer_queries=32)  # fmt: skip
    # Main attention with q = k = 2 x: queries attend to blocks of their own topic.
    with torch.no_grad():
        layer.qkv.weight.zero_()
        layer.qkv.bias.zero_()
        layer.qkv.weight[: 2 * dim] = 2.0 * torch.eye(dim).repeat(2, 1)
    prototypes = 1.5 * torch.randn(4, dim, generator=generator)
    probe = _topic_batch(generator, prototypes, 16, num_blocks, block_size)

    before_weights = [p.detach().clone() for p in layer.indexer.parameters()]
    overlap_before = _topk_overlap(layer, probe)
    optimizer = torch.optim.Adam(layer.indexer.parameters(), lr=1e-2)
    layer.train()
    for _ in range(150):
        x = _topic_batch(generator, prototypes, 8, num_blocks, block_size)
        layer(x)
        optimizer.zero_grad()
        layer.indexer_loss.backward()
        optimizer.step()
    overlap_after = _topk_overlap(layer, probe)

    changed = [not torch.equal(a, b.detach()) for a, b in zip(before_weights, layer.indexer.parameters())]
    assert all(changed), "every indexer parameter receives gradient"
    # With these seeds the overlap is about 0.17 at the start (near chance) and 0.63 after
    # training. Blocks of the same topic tie up to noise, so a perfect overlap is out of reach.
    assert overlap_after > overlap_before + 0.3, (overlap_before, overlap_after)
    assert overlap_after > 0.5, overlap_after


def test_indexer_loss_trains_indexer_only():
    layer, x, pad, _ = _random_case(2, 40, 2, 4, 4, 2, 0)
    layer.train()
    x_in = x.clone().requires_grad_()
    layer(x_in, pad)
    layer.indexer_loss.backward()
    assert x_in.grad is None or torch.equal(x_in.grad, torch.zeros_like(x_in.grad))
    assert layer.qkv.weight.grad is None
    assert layer.indexer.query.weight.grad is not None
    assert layer.indexer.query.weight.grad.abs().sum() > 0
