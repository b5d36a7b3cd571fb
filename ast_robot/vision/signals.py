"""Cheap per-image signals for scoring, and the memory of each image's last ViT visit.

The gate must decide before the ViT runs. So the score of an image comes only from the CNN
proxy's current loss and entropy on it, and from the stale loss: the ViT loss recorded when the
ViT last trained on the image. Images the ViT has not trained on yet use the proxy loss instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


class SampleMemory:
    """The ViT loss and epoch of each training image's last admission.

    Attributes:
        last_loss: float32 (N,), NaN where the ViT never trained on the image.
        last_epoch: int64 (N,), -1 where the ViT never trained on the image.
        visits: int64 (N,), how often the ViT trained on each image.
    """

    def __init__(self, count: int):
        self.last_loss = np.full(count, np.nan, dtype=np.float32)
        self.last_epoch = np.full(count, -1, dtype=np.int64)
        self.visits = np.zeros(count, dtype=np.int64)

    def update(self, index: np.ndarray, losses: np.ndarray, epoch: int) -> None:
        """Record ViT losses (K,) for the training images `index` (K,) seen in `epoch`."""
        self.last_loss[index] = losses
        self.last_epoch[index] = epoch
        self.visits[index] += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "last_loss": torch.from_numpy(self.last_loss.copy()),
            "last_epoch": torch.from_numpy(self.last_epoch.copy()),
            "visits": torch.from_numpy(self.visits.copy()),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("last_loss", "last_epoch", "visits"):
            value = state[name].numpy()
            if value.shape != getattr(self, name).shape:
                raise ValueError(
                    f"sample memory '{name}' has shape {value.shape}, expected {getattr(self, name).shape}"
                )
            setattr(self, name, value.copy())


@dataclass
class CheapSignals:
    """Per-image signals of one batch, all float64 numpy arrays.

    Attributes:
        proxy_loss: (B,) cross-entropy of the proxy on the true label, in nats.
        proxy_entropy: (B,) entropy of the proxy's prediction over log(classes), in [0, 1].
        stale_loss: (B,) ViT loss at the last visit, or the proxy loss for never-visited images.
        staleness: (B,) epochs since the last visit; the current epoch + 1 for never-visited images.
        features: (B, C) the proxy's class probabilities, used as novelty features.
    """

    proxy_loss: np.ndarray
    proxy_entropy: np.ndarray
    stale_loss: np.ndarray
    staleness: np.ndarray
    features: np.ndarray


def cheap_signals(
    proxy_logits: torch.Tensor,
    labels: torch.Tensor,
    memory: SampleMemory,
    index: np.ndarray,
    *,
    epoch: int,
) -> CheapSignals:
    """Compute the scoring signals of a batch without running the ViT.

    Args:
        proxy_logits: (B, C) proxy logits, detached.
        labels: (B,) class indices.
        memory: Last-visit record of every training image.
        index: (B,) training-image indices of the batch.
        epoch: Current epoch, counted from 0.
    """
    logits = proxy_logits.detach().float()
    log_probs = torch.log_softmax(logits, dim=1)  # (B, C)
    proxy_loss = -log_probs.gather(1, labels[:, None]).squeeze(1)  # (B,)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(dim=1) / math.log(logits.shape[1])  # (B,)

    proxy_loss_np = proxy_loss.cpu().numpy().astype(np.float64)
    stale = memory.last_loss[index].astype(np.float64)
    never = np.isnan(stale)
    stale = np.where(never, proxy_loss_np, stale)
    last_epoch = memory.last_epoch[index]
    staleness = np.where(last_epoch < 0, epoch + 1, epoch - last_epoch).astype(np.float64)

    return CheapSignals(
        proxy_loss=proxy_loss_np,
        proxy_entropy=entropy.cpu().numpy().astype(np.float64),
        stale_loss=stale,
        staleness=staleness,
        features=probs.cpu().numpy().astype(np.float64),
    )
