"""The sparse ViT (built on the policy's attention) and the CNN proxy."""

import torch

from ast_robot.config import load_config
from ast_robot.policy.attention import SparseAttention
from ast_robot.vision.proxy import CnnProxy
from ast_robot.vision.vit import SparseViT


def _small_vit(**overrides):
    settings = {"embed_dim": 16, "depth": 2, "heads": 2, "registers": 2, **overrides}
    config = load_config(overrides=[f"vision.{key}={value}" for key, value in settings.items()])
    return SparseViT.from_config(config.vision)


def test_vit_uses_policy_attention_with_global_tokens():
    vit = _small_vit(registers=2)
    layers = [module for module in vit.modules() if isinstance(module, SparseAttention)]
    assert len(layers) == 2
    assert all(layer.num_global == 3 for layer in layers)  # class token + 2 registers
    assert vit.num_patches == 64


def test_vit_logits_shape():
    vit = _small_vit()
    logits = vit(torch.randn(5, 3, 32, 32))
    assert logits.shape == (5, 10)
    assert torch.isfinite(logits).all()


def test_vit_attention_is_sparse():
    # Block 8 = one patch row; window 8 covers the rows above and below; top_k 2 adds two rows.
    vit = _small_vit(registers=0, block_size=8, window=8, top_k=2)
    vit(torch.randn(2, 3, 32, 32))
    selection = vit.blocks[0].attn.last_selection
    allowed = selection.block_allowed()  # (B, 8, 8)
    assert allowed.shape == (2, 8, 8)
    assert (allowed.sum(-1) <= 5).all()  # at most 3 local + 2 selected of 8 rows
    assert not allowed.all()


def test_vit_indexer_loss_after_training_forward():
    vit = _small_vit()
    vit.train()
    vit(torch.randn(4, 3, 32, 32))
    loss = vit.indexer_loss()
    assert loss is not None
    loss.backward()
    indexer_grads = [p.grad for name, p in vit.named_parameters() if "indexer" in name]
    assert any(grad is not None and grad.abs().sum() > 0 for grad in indexer_grads)


def test_vit_patch_position_matters():
    vit = _small_vit().eval()
    images = torch.randn(1, 3, 32, 32)
    shifted = torch.roll(images, shifts=4, dims=3)  # move every patch one column
    with torch.no_grad():
        assert not torch.allclose(vit(images), vit(shifted))


def test_proxy_logits_shape():
    proxy = CnnProxy(width=8)
    assert proxy(torch.randn(3, 3, 32, 32)).shape == (3, 10)
