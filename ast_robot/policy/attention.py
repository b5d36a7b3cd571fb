"""Block-sparse self-attention: a local window, learned top-k blocks and global tokens.

A sequence of L tokens is laid out as ``num_global`` global tokens followed by N = L - G regular
tokens. The regular tokens are cut into blocks of ``block_size`` tokens (the last block may be
partial). Selection is per query block, as in Native Sparse Attention: every query in a block
attends to the same keys, shared by all heads:

- the G global tokens;
- the local window: the blocks within ``ceil(window / block_size)`` blocks of the query block
  (so every query attends at least ``window`` tokens on each side, rounded up to whole blocks);
- the ``top_k`` blocks outside the local window that a small learned indexer scores highest.

Global tokens attend to every token. The selected blocks never include a local block, so a key
is counted once however many of the three sets it could belong to. Padded keys are never
attended; padded queries give zeros. A query with no valid key at all gives zeros, with finite
gradients.

Selecting whole blocks is what makes the sparse path fast: gathering whole blocks and running
fused `scaled_dot_product_attention` on them keeps the memory traffic low, where per-token key
gathers lose to dense attention at every length that fits on a CPU.

Backends, all computing the same function of the same `BlockSelection`:

- ``dense``: `scaled_dot_product_attention` over the whole sequence with the equivalent boolean
  mask. The reference; fastest for short sequences.
- ``gather``: gathers each query block's key blocks and runs SDPA per query block, in
  O(L * (local + top_k) * block_size * d) time and memory.
- ``flex``: FlexAttention with a block mask. CUDA only for training, because FlexAttention has no
  CPU backward (torch 2.13) and compiles slowly on CPU.
- ``auto``: ``dense`` below a measured sequence-length crossover, the sparse backend above it.

The indexer learns through an auxiliary loss: on a random sample of queries it matches its
distribution over candidate blocks to the main attention's probability mass per block (KL
divergence, targets detached). The indexer reads a detached copy of the input, so this loss
trains the indexer only. Read it after a training forward pass with `collect_indexer_loss`.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

Backend = Literal["auto", "dense", "gather", "flex"]
BACKENDS = ("auto", "dense", "gather", "flex")

CPU_GATHER_MIN_LEN = 768
"""Sequence length (tokens) from which ``auto`` uses ``gather`` on CPU.

Measured with `scripts/bench_attention.py --clock cpu` (one thread, torch 2.13, x86_64, batch 4,
4 heads, head dim 32, 64-token blocks, 3 local + 2 selected blocks, forward + backward). Gather
took 1.1x the time of masked dense attention at 512 tokens, 0.68x at 768 and 0.53x at 1024."""

CPU_GATHER_MIN_BLOCK = 32
"""Smallest block size (tokens) for which ``auto`` considers ``gather`` on CPU, because smaller
blocks make each per-block SDPA call too small to pay for its overhead.

NOTE: an estimate; only 64-token blocks were benchmarked against dense attention."""

CUDA_FLEX_MIN_LEN = 2048
"""Sequence length (tokens) from which ``auto`` uses ``flex`` on CUDA.

NOTE: a guess, not measured, because no GPU was available; dense SDPA on a GPU likely stays
competitive to longer sequences than on a CPU."""


# ---------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------


@dataclass
class BlockSelection:
    """The key blocks every query block attends to (besides the global tokens).

    Attributes:
        key_blocks: Key block index per query block, long (B, nb, nk): first the
            ``2 * local_radius + 1`` local slots (query block - radius ... + radius), then the
            ``nk - num_local`` indexer-selected blocks.
        key_block_valid: bool (B, nb, nk); False for local slots outside the sequence and for
            selected slots left over when fewer candidate blocks than top-k exist. An invalid
            slot's index is clamped into range and must be ignored.
        num_global: G, the number of leading global tokens.
        block_size: Tokens per block.
        num_local: Local slots per query block.
        seq_len: L, total tokens including the global ones.
        selects_all_candidates: True when top-k covers every block outside each local window,
            so every query block attends every key block that has a valid token.
    """

    key_blocks: Tensor
    key_block_valid: Tensor
    num_global: int
    block_size: int
    num_local: int
    seq_len: int
    selects_all_candidates: bool = False

    @property
    def num_blocks(self) -> int:
        return self.key_blocks.shape[1]

    @property
    def num_selected(self) -> int:
        return self.key_blocks.shape[2] - self.num_local

    def block_allowed(self) -> Tensor:
        """Return which key blocks each query block attends to, bool (B, nb, nb)."""
        batch, num_blocks, _ = self.key_blocks.shape
        # Count valid slots per key block: an invalid slot's clamped index may repeat a valid one.
        counts = torch.zeros(batch, num_blocks, num_blocks, device=self.key_blocks.device)
        counts.scatter_add_(2, self.key_blocks, self.key_block_valid.to(counts.dtype))
        return counts > 0

    def dense_mask(self) -> Tensor:
        """Return the token-level mask, bool (B, L, L), True where query row attends to key column.

        Padding is not applied here; `dense_attention` combines this with the key padding.
        """
        batch = self.key_blocks.shape[0]
        num_global, block_size, seq_len = self.num_global, self.block_size, self.seq_len
        num_regular = seq_len - num_global

        allowed = self.block_allowed()
        token_block = torch.arange(num_regular, device=allowed.device) // block_size
        # (B, nb, nb) -> (B, N, N): expand block decisions to the tokens of each block.
        regular = allowed[:, token_block][:, :, token_block]

        mask = torch.ones(batch, seq_len, seq_len, dtype=torch.bool, device=allowed.device)
        mask[:, num_global:, num_global:] = regular
        return mask


def local_radius_blocks(window: int, block_size: int) -> int:
    """Return how many blocks on each side of a query block the local window covers."""
    return math.ceil(window / block_size)


def max_candidate_blocks(num_regular: int, block_size: int, local_radius: int) -> int:
    """Return the maximum number of blocks outside the local window of any query block."""
    num_blocks = math.ceil(num_regular / block_size)
    fewest_local = min(local_radius + 1, num_blocks)  # an edge block's window is cut short
    return max(num_blocks - fewest_local, 0)


def select_blocks(
    block_scores: Tensor | None,
    key_valid: Tensor,
    *,
    num_global: int,
    block_size: int,
    local_radius: int,
    top_k: int,
) -> BlockSelection:
    """Build the selection from indexer scores.

    Args:
        block_scores: Indexer score of each key block for each query block, (B, nb, nb), or
            None when no block can be selected (then only local blocks are used).
        key_valid: bool (B, L), False at padded tokens.
        num_global, block_size, local_radius, top_k: As in `SparseAttention`.

    The number selected is clamped to the candidates there are; leftover slots are invalid.
    """
    batch, seq_len = key_valid.shape
    device = key_valid.device
    num_regular = seq_len - num_global
    num_blocks = math.ceil(num_regular / block_size)

    local, local_valid, not_local = _local_window(num_blocks, local_radius, device)
    local = local.expand(batch, -1, -1)
    local_valid = local_valid.expand(batch, -1, -1)

    candidates = max_candidate_blocks(num_regular, block_size, local_radius)
    num_selected = min(top_k, candidates)
    if num_selected == 0 or block_scores is None:
        return BlockSelection(
            local.contiguous(), local_valid.contiguous(), num_global, block_size,
            local.shape[-1], seq_len, selects_all_candidates=candidates == 0,
        )

    # A key block is a candidate when it is outside the local window and holds a valid token.
    block_has_key = _block_any(key_valid[:, num_global:], block_size)  # (B, nb)
    candidate = block_has_key[:, None, :] & not_local  # (B, nb, nb)
    scores = block_scores.detach().masked_fill(~candidate, float("-inf"))
    top_scores, chosen = scores.topk(num_selected, dim=-1)  # (B, nb, k)
    chosen_valid = torch.isfinite(top_scores)

    return BlockSelection(
        torch.cat([local, chosen], dim=-1),
        torch.cat([local_valid, chosen_valid], dim=-1),
        num_global,
        block_size,
        local.shape[-1],
        seq_len,
        selects_all_candidates=num_selected == candidates,
    )


@functools.lru_cache(maxsize=64)
def _local_window(num_blocks: int, local_radius: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Return the local window of every query block, cached because it depends on sizes only.

    Returns:
        Local key block per slot, long (nb, 2r+1), clamped into range; whether each slot is in
        range, bool (nb, 2r+1); and whether each key block is outside the window, bool (nb, nb).
        Callers must not modify them in place.
    """
    block_ids = torch.arange(num_blocks, device=device)
    offsets = torch.arange(-local_radius, local_radius + 1, device=device)
    local = block_ids[:, None] + offsets[None, :]  # (nb, 2r+1)
    local_valid = (local >= 0) & (local < num_blocks)
    local = local.clamp(0, max(num_blocks - 1, 0))
    not_local = (block_ids[None, :] - block_ids[:, None]).abs() > local_radius  # (nb, nb)
    return local, local_valid, not_local


def _block_any(token_flags: Tensor, block_size: int) -> Tensor:
    """Return whether any token of each block is set: bool (B, N) -> bool (B, nb)."""
    batch, num_tokens = token_flags.shape
    num_blocks = math.ceil(num_tokens / block_size)
    padded = F.pad(token_flags, (0, num_blocks * block_size - num_tokens), value=False)
    return padded.view(batch, num_blocks, block_size).any(-1)


def _block_mean(values: Tensor, token_valid: Tensor, block_size: int) -> Tensor:
    """Return the mean over valid tokens per block: (B, N, D), bool (B, N) -> (B, nb, D).

    Padded tokens are replaced, not multiplied, so NaN or Inf in padding cannot leak in.
    """
    batch, num_tokens, dim = values.shape
    num_blocks = math.ceil(num_tokens / block_size)
    pad = num_blocks * block_size - num_tokens
    values = torch.where(token_valid[..., None], values, torch.zeros((), dtype=values.dtype))
    values = F.pad(values, (0, 0, 0, pad)).view(batch, num_blocks, block_size, dim)
    counts = F.pad(token_valid, (0, pad), value=False).view(batch, num_blocks, block_size)
    counts = counts.sum(-1, keepdim=True).clamp(min=1).to(values.dtype)
    return values.sum(2) / counts


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


def dense_attention(
    q: Tensor, k: Tensor, v: Tensor, selection: BlockSelection, key_valid: Tensor
) -> Tensor:
    """Attend with SDPA over the whole sequence and the selection's boolean mask.

    Args:
        q, k, v: (B, L, h, dh).
        selection: From `select_blocks`.
        key_valid: bool (B, L), False at padded tokens.

    Returns:
        (B, L, h, dh); zeros for queries with no valid key.
    """
    if selection.selects_all_candidates and bool(key_valid.all()):
        # Nothing is masked: skip building the (B, L, L) mask so SDPA runs its unmasked kernel.
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)

    mask = selection.dense_mask() & key_valid[:, None, :]  # (B, L, L)
    has_key = mask.any(-1)  # (B, L)
    # SDPA gives NaN for a row with no allowed key; open such rows and zero them afterwards.
    mask = mask | ~has_key[..., None]

    attn_mask = None if bool(mask.all()) else mask[:, None]  # (B, 1, L, L)
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask
    )  # (B, h, L, dh)
    out = out.transpose(1, 2)  # (B, L, h, dh)
    return out * has_key[..., None, None].to(out.dtype)


def gather_attention(
    q: Tensor, k: Tensor, v: Tensor, selection: BlockSelection, key_valid: Tensor
) -> Tensor:
    """Attend by gathering each query block's key blocks and running SDPA per query block.

    Args and Returns as in `dense_attention`.
    """
    batch, seq_len, heads, head_dim = q.shape
    num_global, block_size = selection.num_global, selection.block_size
    num_regular = seq_len - num_global
    num_blocks = selection.num_blocks
    padded_len = num_blocks * block_size
    pad = padded_len - num_regular

    global_out = _global_queries(q, k, v, key_valid, num_global)  # (B, G, h, dh)

    # Key table: the regular tokens padded to whole blocks, then the global tokens.
    kv = torch.stack([k, v], dim=2)  # (B, L, 2, h, dh)
    kv_table = torch.cat([F.pad(kv[:, num_global:], (0, 0, 0, 0, 0, 0, 0, pad)), kv[:, :num_global]], 1)
    valid_table = torch.cat(
        [F.pad(key_valid[:, num_global:], (0, pad), value=False), key_valid[:, :num_global]], 1
    )  # (B, Np + G)
    table_len = padded_len + num_global

    # Token index of every key of every query block: the selected blocks' tokens, then globals.
    within = torch.arange(block_size, device=q.device)
    block_tokens = selection.key_blocks[..., None] * block_size + within  # (B, nb, nk, bs)
    global_tokens = torch.arange(padded_len, table_len, device=q.device)
    index = torch.cat(
        [block_tokens.flatten(2), global_tokens.expand(batch, num_blocks, num_global)], dim=2
    )  # (B, nb, M) with M = nk * bs + G
    keys_per_block = index.shape[-1]

    flat_index = (index + torch.arange(batch, device=q.device)[:, None, None] * table_len).flatten()
    gathered = kv_table.reshape(batch * table_len, 2 * heads * head_dim).index_select(0, flat_index)
    gathered = gathered.view(batch * num_blocks, keys_per_block, 2, heads, head_dim)
    k_blocks = gathered[:, :, 0].transpose(1, 2)  # (B * nb, h, M, dh)
    v_blocks = gathered[:, :, 1].transpose(1, 2)

    slot_valid = torch.cat(
        [
            selection.key_block_valid.repeat_interleave(block_size, dim=2),
            torch.ones(batch, num_blocks, num_global, dtype=torch.bool, device=q.device),
        ],
        dim=2,
    )  # (B, nb, M)
    mask = slot_valid & torch.gather(valid_table, 1, index.flatten(1)).view_as(index)
    has_key = mask.any(-1)  # (B, nb)
    mask = mask | ~has_key[..., None]
    attn_mask = None if bool(mask.all()) else mask.view(batch * num_blocks, 1, 1, keys_per_block)

    q_regular = F.pad(q[:, num_global:], (0, 0, 0, 0, 0, pad))  # (B, Np, h, dh)
    q_blocks = q_regular.reshape(batch * num_blocks, block_size, heads, head_dim).transpose(1, 2)
    out = F.scaled_dot_product_attention(q_blocks, k_blocks, v_blocks, attn_mask=attn_mask)
    out = out * has_key.view(batch * num_blocks, 1, 1, 1).to(out.dtype)  # (B * nb, h, bs, dh)
    out = out.transpose(1, 2).reshape(batch, padded_len, heads, head_dim)[:, :num_regular]

    return torch.cat([global_out, out], dim=1)


def _global_queries(q: Tensor, k: Tensor, v: Tensor, key_valid: Tensor, num_global: int) -> Tensor:
    """Attend from the global tokens to every valid token: (B, L, h, dh) -> (B, G, h, dh)."""
    if num_global == 0:
        return q[:, :0]
    has_key = key_valid.any(-1)  # (B,)
    mask = key_valid | ~has_key[:, None]
    attn_mask = None if bool(mask.all()) else mask[:, None, None, :]  # (B, 1, 1, L)
    out = F.scaled_dot_product_attention(
        q[:, :num_global].transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask
    ).transpose(1, 2)
    return out * has_key[:, None, None, None].to(out.dtype)


_compiled_flex = None


def flex_available() -> bool:
    """Return whether this torch build has FlexAttention."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def flex_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    selection: BlockSelection,
    key_valid: Tensor,
    *,
    compiled: bool = True,
) -> Tensor:
    """Attend with FlexAttention and a block mask built from the selection.

    Args and Returns as in `dense_attention`. ``compiled=False`` runs FlexAttention's eager
    reference, which on CPU supports the forward pass only (used to test the mask logic).
    """
    from torch.nn.attention.flex_attention import create_block_mask
    from torch.nn.attention.flex_attention import flex_attention as flex

    global _compiled_flex
    batch, seq_len, _, _ = q.shape
    num_global, block_size = selection.num_global, selection.block_size
    allowed = selection.block_allowed()  # (B, nb, nb)

    def mask_mod(b, h, q_idx, kv_idx):
        q_block = torch.clamp(q_idx - num_global, min=0) // block_size
        kv_block = torch.clamp(kv_idx - num_global, min=0) // block_size
        either_global = (q_idx < num_global) | (kv_idx < num_global)
        return key_valid[b, kv_idx] & (either_global | allowed[b, q_block, kv_block])

    # NOTE: the compiled path (CUDA) has never run, because no GPU was available. Only the eager
    # reference was tested, on CPU and forward only.
    block_mask = create_block_mask(
        mask_mod, batch, None, seq_len, seq_len, device=q.device, _compile=compiled
    )
    if compiled:
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex, dynamic=False)
        run = _compiled_flex
    else:
        run = flex
    out = run(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_mask=block_mask)
    out = out.transpose(1, 2)  # (B, L, h, dh)

    # Rows with no valid key: FlexAttention returns zeros there, but zero explicitly so every
    # backend agrees whatever the kernel does.
    has_key = _rows_with_keys(selection, key_valid)  # (B, L)
    return out * has_key[..., None, None].to(out.dtype)


def _rows_with_keys(selection: BlockSelection, key_valid: Tensor) -> Tensor:
    """Return which queries attend at least one valid key, bool (B, L), without an (L, L) mask."""
    num_global, block_size = selection.num_global, selection.block_size
    global_valid = key_valid[:, :num_global].any(-1)  # (B,)
    block_has_key = _block_any(key_valid[:, num_global:], block_size)  # (B, nb)
    reachable = (selection.block_allowed() & block_has_key[:, None, :]).any(-1)  # (B, nb)
    regular = (reachable | global_valid[:, None]).repeat_interleave(block_size, dim=1)
    regular = regular[:, : selection.seq_len - num_global]  # (B, N)
    globals_ = key_valid.any(-1, keepdim=True).expand(-1, num_global)  # (B, G)
    return torch.cat([globals_, regular], dim=1)


def resolve_backend(backend: Backend, device: torch.device, seq_len: int, block_size: int) -> str:
    """Return the concrete backend ``auto`` stands for on this device and sequence length."""
    if backend != "auto":
        return backend
    if device.type == "cuda":
        return "flex" if seq_len >= CUDA_FLEX_MIN_LEN and flex_available() else "dense"
    if seq_len >= CPU_GATHER_MIN_LEN and block_size >= CPU_GATHER_MIN_BLOCK:
        return "gather"
    return "dense"


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    selection: BlockSelection,
    key_valid: Tensor,
    backend: Backend = "auto",
) -> Tensor:
    """Run one backend on (B, L, h, dh) queries, keys and values; return (B, L, h, dh)."""
    name = resolve_backend(backend, q.device, q.shape[1], selection.block_size)
    if name == "dense":
        return dense_attention(q, k, v, selection, key_valid)
    if name == "gather":
        return gather_attention(q, k, v, selection, key_valid)
    if name == "flex":
        if q.device.type != "cuda":
            raise ValueError(
                f"attention backend 'flex' needs a CUDA device, got {q.device}; "
                "use 'auto', 'dense' or 'gather' on this device"
            )
        if not flex_available():
            raise ValueError(
                f"attention backend 'flex' needs FlexAttention (torch >= 2.5), but torch is "
                f"{torch.__version__}; use 'auto', 'dense' or 'gather'"
            )
        return flex_attention(q, k, v, selection, key_valid)
    raise ValueError(f"unknown attention backend {backend!r}; expected one of {BACKENDS}")


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------


class BlockIndexer(nn.Module):
    """Score key blocks for query blocks with a few low-dimensional ReLU heads.

    score(qb, kb) = sum_h w_h(qb) * relu(q_h(qb) . k_h(kb)) / sqrt(d_h), where q, k and w are
    linear maps of the block-mean input.
    """

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        self.query = nn.Linear(dim, heads * head_dim, bias=False)
        self.key = nn.Linear(dim, heads * head_dim, bias=False)
        self.head_weight = nn.Linear(dim, heads)

    def forward(self, pooled: Tensor) -> Tensor:
        """Score blocks: pooled (B, nb, D) -> scores (B, nb query, nb key)."""
        batch, num_blocks, _ = pooled.shape
        q = self.query(pooled).view(batch, num_blocks, self.heads, self.head_dim)
        k = self.key(pooled).view(batch, num_blocks, self.heads, self.head_dim)
        per_head = torch.relu(torch.einsum("bqhd,bkhd->bqkh", q, k)) / math.sqrt(self.head_dim)
        weight = self.head_weight(pooled)  # (B, nb, heads)
        return torch.einsum("bqkh,bqh->bqk", per_head, weight)


class SparseAttention(nn.Module):
    """Multi-head self-attention with block-sparse selection; see the module docstring.

    Args:
        dim: Token width D.
        num_heads: Attention heads; D must divide by it.
        num_global: Leading tokens that attend to and are attended by every token.
        block_size: Tokens per block, the unit of selection.
        window: Local window half-width in tokens, rounded up to whole blocks.
        top_k: Key blocks the indexer selects per query block, besides the local ones.
        indexer_heads, indexer_dim: Size of the indexer.
        indexer_queries: Queries sampled per batch for the indexer's auxiliary loss.
        backend: ``auto``, ``dense``, ``gather`` or ``flex``.
        max_len: Longest sequence (tokens, globals included) this layer will see, when known;
            used only to warn when ``top_k`` is always clamped.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        num_global: int = 0,
        block_size: int = 64,
        window: int = 64,
        top_k: int = 2,
        indexer_heads: int = 2,
        indexer_dim: int = 16,
        indexer_queries: int = 16,
        backend: Backend = "auto",
        max_len: int | None = None,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown attention backend {backend!r}; expected one of {BACKENDS}")
        for name, value, low in [
            ("num_global", num_global, 0), ("block_size", block_size, 1), ("window", window, 0),
            ("top_k", top_k, 0), ("indexer_heads", indexer_heads, 1),
            ("indexer_dim", indexer_dim, 1), ("indexer_queries", indexer_queries, 0),
        ]:  # fmt: skip
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")

        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.num_global = num_global
        self.block_size = block_size
        self.window = window
        self.local_radius = local_radius_blocks(window, block_size)
        self.top_k = top_k
        self.indexer_queries = indexer_queries
        self.backend = backend

        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.indexer = BlockIndexer(dim, indexer_heads, indexer_dim)

        self.indexer_loss: Tensor | None = None
        """KL divergence of the indexer from the attention on sampled queries, set by a
        training forward pass with grad enabled; None otherwise."""
        self.last_selection: BlockSelection | None = None
        """The selection of the latest forward pass, for tests and inspection."""

        if max_len is not None and top_k > 0:
            self.warn_if_top_k_clamped(max_len)

    def warn_if_top_k_clamped(self, max_len: int) -> None:
        """Warn when ``top_k`` exceeds the candidate blocks of every sequence up to max_len."""
        most = max_candidate_blocks(max_len - self.num_global, self.block_size, self.local_radius)
        if self.top_k > most:
            warnings.warn(
                f"top_k={self.top_k} key blocks is more than the {most} blocks outside the local "
                f"window of a {max_len}-token sequence (block_size={self.block_size}, "
                f"window={self.window}), so it is always clamped to {most}; "
                f"lower top_k or window to make selection matter",
                UserWarning,
                stacklevel=3,
            )

    def select(self, x: Tensor, key_valid: Tensor) -> tuple[BlockSelection, Tensor | None]:
        """Choose key blocks from the input x (B, L, D); return the selection and indexer scores."""
        num_regular = x.shape[1] - self.num_global
        candidates = max_candidate_blocks(num_regular, self.block_size, self.local_radius)
        # When top_k covers every candidate the scores cannot change the selection, so the
        # indexer runs only where its auxiliary loss is needed.
        every_candidate = self.top_k >= candidates
        if self.top_k == 0 or candidates == 0:
            scores = None
        elif every_candidate and not (self.training and torch.is_grad_enabled()):
            num_blocks = math.ceil(num_regular / self.block_size)
            uniform = torch.zeros(x.shape[0], num_blocks, num_blocks, device=x.device)
            selection = select_blocks(
                uniform,
                key_valid,
                num_global=self.num_global,
                block_size=self.block_size,
                local_radius=self.local_radius,
                top_k=self.top_k,
            )
            return selection, None
        else:
            regular_valid = key_valid[:, self.num_global :]
            pooled = _block_mean(x[:, self.num_global :].detach(), regular_valid, self.block_size)
            scores = self.indexer(pooled)  # (B, nb, nb)
        selection = select_blocks(
            scores,
            key_valid,
            num_global=self.num_global,
            block_size=self.block_size,
            local_radius=self.local_radius,
            top_k=self.top_k,
        )
        return selection, scores

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        *,
        selection: BlockSelection | None = None,
        backend: Backend | None = None,
    ) -> Tensor:
        """Attend.

        Args:
            x: Tokens (B, L, D); the first ``num_global`` are the global tokens.
            key_padding_mask: bool (B, L), True at padded tokens; None when nothing is padded.
            selection: Use this selection instead of the indexer's (for comparing backends).
            backend: Override the layer's backend for this call.

        Returns:
            (B, L, D); padded positions are zero.
        """
        batch, seq_len, dim = x.shape
        if seq_len <= self.num_global:
            raise ValueError(
                f"sequence of {seq_len} tokens has no regular token after {self.num_global} global ones"
            )
        if key_padding_mask is None:
            key_valid = torch.ones(batch, seq_len, dtype=torch.bool, device=x.device)
        else:
            key_valid = ~key_padding_mask.to(torch.bool)

        scores = None
        if selection is None:
            selection, scores = self.select(x, key_valid)
        self.last_selection = selection

        qkv = self.qkv(x).view(batch, seq_len, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(2)  # each (B, L, h, dh)
        out = attend(q, k, v, selection, key_valid, backend or self.backend)
        out = out * key_valid[..., None, None].to(out.dtype)  # padded queries give zeros

        self.indexer_loss = None
        if scores is not None and self.training and torch.is_grad_enabled():
            self.indexer_loss = self._indexer_loss(q.detach(), k.detach(), scores, selection, key_valid)

        return self.proj(out.reshape(batch, seq_len, dim)) * key_valid[..., None].to(x.dtype)

    def _indexer_loss(
        self, q: Tensor, k: Tensor, scores: Tensor, selection: BlockSelection, key_valid: Tensor
    ) -> Tensor:
        """KL(attention block mass || indexer distribution) over candidate blocks, sampled queries.

        Args:
            q, k: Detached main-attention queries and keys (B, L, h, dh).
            scores: Indexer scores (B, nb, nb), with gradient.
        """
        num_global, block_size = self.num_global, self.block_size
        batch, seq_len, heads, head_dim = q.shape
        num_regular = seq_len - num_global
        num_blocks = selection.num_blocks
        samples = min(self.indexer_queries, num_regular)
        if samples == 0:
            return scores.sum() * 0.0

        positions = torch.randperm(num_regular, device=q.device)[:samples]  # (S,)
        q_sample = q[:, num_global + positions]  # (B, S, h, dh)
        k_regular = k[:, num_global:]  # (B, N, h, dh)
        regular_valid = key_valid[:, num_global:]  # (B, N)

        logits = torch.einsum("bshd,bnhd->bhsn", q_sample, k_regular) / math.sqrt(head_dim)
        logits = logits.masked_fill(~regular_valid[:, None, None, :], float("-inf"))
        probs = torch.nan_to_num(logits.softmax(-1)).mean(1)  # (B, S, N)
        pad = num_blocks * block_size - num_regular
        block_mass = F.pad(probs, (0, pad)).view(batch, samples, num_blocks, block_size).sum(-1)

        query_block = positions // block_size  # (S,)
        block_ids = torch.arange(num_blocks, device=q.device)
        not_local = (block_ids[None, :] - query_block[:, None]).abs() > self.local_radius  # (S, nb)
        candidate = not_local[None] & _block_any(regular_valid, block_size)[:, None, :]  # (B, S, nb)
        target = block_mass * candidate
        total = target.sum(-1, keepdim=True)  # (B, S, 1)
        used = (total[..., 0] > 0) & regular_valid[:, positions]  # (B, S)
        target = target / total.clamp(min=1e-12)

        indexer_logits = scores[:, query_block].masked_fill(~candidate, float("-inf"))  # (B, S, nb)
        log_q = torch.log_softmax(indexer_logits, dim=-1)
        log_q = torch.where(candidate, log_q, torch.zeros((), dtype=log_q.dtype))
        kl = (torch.xlogy(target, target) - target * log_q).sum(-1)  # (B, S)
        kl = torch.where(used, kl, torch.zeros((), dtype=kl.dtype))
        return kl.sum() / used.sum().clamp(min=1)


class SparseTransformerBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    Args:
        dim: Token width D.
        num_heads: Attention heads.
        mlp_ratio: Hidden width of the MLP as a multiple of D.
        **attention_kwargs: Passed to `SparseAttention`.
    """

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, **attention_kwargs):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SparseAttention(dim, num_heads, **attention_kwargs)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """Transform tokens (B, L, D) -> (B, L, D)."""
        x = x + self.attn(self.norm1(x), key_padding_mask)
        return x + self.mlp(self.norm2(x))


def collect_indexer_loss(module: nn.Module) -> Tensor | None:
    """Return the mean indexer loss over every `SparseAttention` in module, or None if none has one."""
    losses = [
        layer.indexer_loss
        for layer in module.modules()
        if isinstance(layer, SparseAttention) and layer.indexer_loss is not None
    ]
    if not losses:
        return None
    return torch.stack(losses).mean()
