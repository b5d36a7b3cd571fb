"""The vision training loop: per-image significance, the Sundew gate, the sparse ViT and the proxy.

One training step on a batch of B images:

1. Augment the batch on the device (random crop with padding, horizontal flip, normalization).
2. Gate mode ``on``: run the CNN proxy on all B images and score each image from cheap signals:
   the proxy's loss and entropy, and the ViT loss of the image's last visit. The gate admits the
   images whose score clears its threshold. Mode ``random`` admits each image with probability
   equal to the target rate, and mode ``off`` admits every image.
3. Run the ViT forward and backward on the admitted images only. Skipped images never reach the
   ViT, so its compute is proportional to what the gate admits.
4. Train the proxy on the skipped images.

An epoch is one pass over the training images. After each epoch the ViT is validated on the test
split, a metrics row is appended, and the ``last`` checkpoint is written, as is ``best`` when the
validation accuracy is a new best.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ast_robot.config import Config, config_to_dict, save_config
from ast_robot.errors import CheckpointError, ConfigError
from ast_robot.gate import SundewGate
from ast_robot.run_directory import check_new_run_dir
from ast_robot.significance import SignificanceInputs, SignificanceModel, rank_normalize
from ast_robot.vision.augment import channel_stats, normalize, random_crop_flip, to_float
from ast_robot.vision.data import NUM_CLASSES, Cifar10
from ast_robot.vision.proxy import CnnProxy
from ast_robot.vision.rundir import RUN_MARKERS, RunDirectory
from ast_robot.vision.signals import CheapSignals, SampleMemory, cheap_signals
from ast_robot.vision.vit import SparseViT

logger = logging.getLogger(__name__)

GATE_MODES = ("on", "off", "random")

# Config fields that fix the shapes of the saved models; a resume must not change them.
_ARCHITECTURE_FIELDS = (
    "patch_size", "embed_dim", "depth", "heads", "mlp_ratio", "registers", "proxy_width",
    "block_size", "indexer_heads", "indexer_dim",
)


@dataclass
class ComputeCounters:
    """Images through each model in training, counted as they are processed."""

    samples_seen: int = 0
    vit_forward: int = 0
    vit_backward: int = 0
    proxy_forward: int = 0
    proxy_backward: int = 0
    vit_steps: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass
class EpochResult:
    """Numbers of one epoch; `metrics` is the row written to ``metrics.jsonl``."""

    epoch: int
    metrics: dict[str, Any] = field(default_factory=dict)


class VisionTrainer:
    """Train a sparse ViT on CIFAR-10 with per-image gating.

    Args:
        config: Resolved config; the ``vision``, ``significance``, ``gate`` and ``train.seed``
            settings are used.
        data: Loaded dataset; ``vision.train_subset`` and ``vision.test_subset`` are applied here.
        device: Where both models, the images and the augmentation run.
        gate_mode: ``on`` (score and gate), ``off`` (every image updates the ViT) or ``random``
            (admit at the target rate by chance).
        progress: Show a progress bar over each epoch's batches (when INFO logging is on).
    """

    def __init__(
        self, config: Config, data: Cifar10, *, device: torch.device, gate_mode: str = "on", progress: bool = True
    ):
        if gate_mode not in GATE_MODES:
            raise ConfigError(f"gate mode {gate_mode!r} is not one of {', '.join(GATE_MODES)}")
        self.config = config
        self.cfg = config.vision
        self.device = torch.device(device)
        self.gate_mode = gate_mode
        self.progress = progress
        self.seed = config.train.seed

        train = data.train.subset(self.cfg.train_subset)
        test = data.test.subset(self.cfg.test_subset)
        mean, std = channel_stats(train.images)
        self.mean = torch.from_numpy(mean).to(self.device)
        self.std = torch.from_numpy(std).to(self.device)
        # uint8 images live on the device; 50k CIFAR images take 150 MB.
        self.train_images = torch.from_numpy(train.images).to(self.device)
        self.train_labels = torch.from_numpy(train.labels).to(self.device)
        self.test_images = torch.from_numpy(test.images).to(self.device)
        self.test_labels = torch.from_numpy(test.labels).to(self.device)
        self.num_train = len(train)

        torch.manual_seed(self.seed)
        self.vit = SparseViT.from_config(self.cfg, num_classes=NUM_CLASSES).to(self.device)
        self.proxy = CnnProxy(width=self.cfg.proxy_width, num_classes=NUM_CLASSES).to(self.device)
        self.use_cuda_features = self.device.type == "cuda"
        if self.use_cuda_features and self.cfg.channels_last:
            self.proxy = self.proxy.to(memory_format=torch.channels_last)
            self.vit = self.vit.to(memory_format=torch.channels_last)
        self._vit_call = self.vit
        self._proxy_call = self.proxy
        self._maybe_compile()

        self.steps_per_epoch = math.ceil(self.num_train / self.cfg.batch_size)
        self.vit_optimizer = torch.optim.AdamW(
            self.vit.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        self.proxy_optimizer = torch.optim.AdamW(
            self.proxy.parameters(), lr=self.cfg.proxy_lr, weight_decay=self.cfg.weight_decay
        )
        self.vit_scheduler = torch.optim.lr_scheduler.LambdaLR(self.vit_optimizer, self._lr_factor)

        self.gate = SundewGate(self._gate_config(), seed=self.seed)
        self.significance = SignificanceModel(config.significance, modality="vision", seed=self.seed)
        self.memory = SampleMemory(self.num_train)
        # Recent scores per class, for class-balanced gating.
        self.class_windows = [np.zeros(0) for _ in range(NUM_CLASSES)]
        self.counters = ComputeCounters()
        self.epoch = 0
        self.best_accuracy = -1.0
        self.shuffle_generator = torch.Generator().manual_seed(self.seed)
        self.augment_generator = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        self.flops = self._measure_flops()

    # -----------------------------------------------------------------------------------------
    # Setup helpers
    # -----------------------------------------------------------------------------------------

    def _gate_config(self):
        """Return the gate settings with the vision target rate and this run's mode."""
        gate_cfg = dataclasses.replace(
            self.config.gate, mode=self.gate_mode, target_rate=self.cfg.gate_target_rate
        )
        if self.gate_mode == "on" and gate_cfg.probe_rate >= gate_cfg.target_rate:
            raise ConfigError(
                f"gate.probe_rate={gate_cfg.probe_rate} must be below vision.gate_target_rate="
                f"{gate_cfg.target_rate}, or probes alone would exceed the target rate"
            )
        return gate_cfg

    def _maybe_compile(self) -> None:
        if not self.cfg.compile:
            return
        if not self.use_cuda_features:
            logger.info("vision.compile is set but the device is %s; running uncompiled", self.device)
            return
        # The admitted batch size changes from step to step, so compile with dynamic shapes.
        # NOTE: never run here (no GPU was available); the attention layers set attributes
        # (indexer_loss, last_selection) inside forward, which may cost graph breaks.
        self._vit_call = torch.compile(self.vit, dynamic=True)
        self._proxy_call = torch.compile(self.proxy, dynamic=True)

    def _lr_factor(self, step: int) -> float:
        """Linear warmup over ``warmup_epochs``, then cosine decay to 0 at the last step."""
        total = max(1, self.cfg.epochs * self.steps_per_epoch)
        warmup = self.cfg.warmup_epochs * self.steps_per_epoch
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def _autocast(self):
        enabled = self.use_cuda_features and self.cfg.mixed_precision
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _measure_flops(self) -> dict[str, float]:
        """Count forward + backward FLOPs per image of each model with torch's FLOP counter."""
        from torch.utils.flop_counter import FlopCounterMode

        sample = torch.zeros(2, 3, 32, 32, device=self.device)
        rng_state = torch.get_rng_state()
        result = {}
        for name, model in (("vit", self.vit), ("proxy", self.proxy)):
            # A copy, so the proxy's batch-norm statistics never see the dummy batch.
            scratch = copy.deepcopy(model).train()
            counter = FlopCounterMode(display=False)
            with counter:
                scratch(sample).sum().backward()
            result[name] = counter.get_total_flops() / len(sample)
        torch.set_rng_state(rng_state)
        # The proxy's forward alone is about a third of its forward + backward.
        result["proxy_forward"] = result["proxy"] / 3.0
        return result

    # -----------------------------------------------------------------------------------------
    # Training
    # -----------------------------------------------------------------------------------------

    def _augmented(self, index: torch.Tensor) -> torch.Tensor:
        """Normalized, augmented float images (B, 3, 32, 32) of the training images `index`."""
        images = to_float(self.train_images[index])
        images = random_crop_flip(
            images, padding=self.cfg.crop_padding, flip=self.cfg.flip, generator=self.augment_generator
        )
        images = normalize(images, self.mean, self.std)
        if self.use_cuda_features and self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def _progress(self) -> float:
        return min(1.0, self.epoch / max(1, self.cfg.epochs - 1)) if self.cfg.epochs > 1 else 1.0

    def _score(self, inputs: SignificanceInputs, labels: np.ndarray) -> np.ndarray:
        result = self.significance.score(inputs, progress=self._progress())
        scores = np.asarray(result.score, dtype=np.float64)
        if self.cfg.balance_classes:
            scores = self._class_percentiles(scores, labels)
        return scores

    def _class_percentiles(self, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Replace each score (B,) by its percentile among recent scores of the same class.

        The gate then admits about the target rate of every class, so a class the proxy finds
        easy cannot be starved.
        """
        window = self.config.significance.window
        out = np.empty_like(scores)
        for label in np.unique(labels):
            members = labels == label
            reference = np.concatenate([self.class_windows[label], scores[members]])
            out[members] = rank_normalize(scores[members], reference)
            self.class_windows[label] = reference[-window:]
        return out

    def _decide(self, scores: np.ndarray | None, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Admission mask (B,) bool and admission probabilities (B,) of one batch.

        Modes ``off`` and ``random`` ignore scores, so they get zeros and no image is scored.
        """
        if scores is None:
            scores = np.zeros(batch)
        decision = self.gate.decide(scores)
        admitted = np.asarray(decision.open, dtype=bool)
        return admitted, self._admission_probability(decision, scores)

    def _admission_probability(self, decision: Any, scores: np.ndarray) -> np.ndarray:
        """Probability (B,) with which the gate's rule would admit each image.

        With a temperature T the rule admits with sigmoid((score - threshold) / T); probes add
        ``probe_rate`` of the rest. A hard threshold admits with probability 1 above it, so then
        only probe-admitted images get weights above 1.
        """
        gate_cfg = self.gate.cfg
        if gate_cfg.mode == "off":
            return np.ones(len(scores))
        if gate_cfg.mode == "random":
            return np.full(len(scores), gate_cfg.target_rate)
        if gate_cfg.temperature > 0.0:
            rule = 1.0 / (1.0 + np.exp(-(scores - decision.thresholds) / gate_cfg.temperature))
        else:
            rule = (scores > decision.thresholds).astype(np.float64)
        return rule + (1.0 - rule) * gate_cfg.probe_rate

    def _importance_weights(self, probability: np.ndarray) -> torch.Tensor:
        """Weights (K,) of the admitted images, 1 / p capped and normalized to mean 1."""
        weights = 1.0 / np.maximum(probability, 1.0 / self.cfg.max_importance_weight)
        weights = weights / weights.mean()
        return torch.as_tensor(weights, dtype=torch.float32, device=self.device)

    def train_step(self, index: torch.Tensor) -> dict[str, float]:
        """Gate one batch of training images `index` (B,) and update the ViT and the proxy."""
        images = self._augmented(index)
        labels = self.train_labels[index]
        batch = len(index)
        index_np = index.cpu().numpy()
        self.counters.samples_seen += batch

        # Score from cheap signals: only the proxy runs on the whole batch.
        proxy_losses = None
        scores = None
        inputs = None
        if self.gate_mode == "on":
            with self._autocast():
                proxy_logits = self._proxy_call(images)  # (B, 10)
            self.counters.proxy_forward += batch
            proxy_losses = F.cross_entropy(proxy_logits.float(), labels, reduction="none")  # (B,)
            inputs = _significance_inputs(
                cheap_signals(proxy_logits, labels, self.memory, index_np, epoch=self.epoch)
            )
            scores = self._score(inputs, labels.cpu().numpy())
        admitted, probability = self._decide(scores, batch)
        admitted_t = torch.from_numpy(admitted).to(self.device)

        # ViT forward and backward on the admitted images only.
        vit_loss = float("nan")
        count = int(admitted.sum())
        if count:
            with self._autocast():
                logits = self._vit_call(images[admitted_t])  # (K, 10)
            per_image = F.cross_entropy(
                logits.float(), labels[admitted_t], reduction="none", label_smoothing=self.cfg.label_smoothing
            )  # (K,)
            if self.cfg.importance_weighting and self.gate_mode != "off":
                loss = (per_image * self._importance_weights(probability[admitted])).mean()
            else:
                loss = per_image.mean()
            indexer_loss = self.vit.indexer_loss()
            if indexer_loss is not None and self.cfg.indexer_loss_weight > 0:
                # The indexers read detached inputs, so this term trains only the indexers.
                loss = loss + self.cfg.indexer_loss_weight * indexer_loss
            self.vit_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.vit_optimizer.step()
            self.counters.vit_forward += count
            self.counters.vit_backward += count
            self.counters.vit_steps += 1
            vit_loss = float(per_image.detach().mean())
            self.memory.update(index_np[admitted], per_image.detach().float().cpu().numpy(), self.epoch)
            if inputs is not None:
                self.significance.mark_trained(inputs.subset(admitted))
        self.vit_scheduler.step()

        # The proxy learns from what the ViT skipped.
        # NOTE: this makes the proxy best at exactly the skipped images, so their scores fall and
        # they stay skipped. Without vision.balance_classes the hard gate starved whole classes
        # this way on the synthetic benchmark.
        proxy_loss = float("nan")
        skipped_t = ~admitted_t
        skipped = batch - count
        if skipped and self.gate_mode != "off":
            if proxy_losses is None:
                with self._autocast():
                    skipped_logits = self._proxy_call(images[skipped_t])
                self.counters.proxy_forward += skipped
                loss = F.cross_entropy(skipped_logits.float(), labels[skipped_t])
            else:
                loss = proxy_losses[skipped_t].mean()
            self.proxy_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.proxy_optimizer.step()
            self.counters.proxy_backward += skipped
            proxy_loss = float(loss.detach())

        return {"vit_loss": vit_loss, "proxy_loss": proxy_loss, "admitted": count, "batch": batch}

    def train_epoch(self) -> EpochResult:
        """Run one epoch of training and validation, and return its metrics row."""
        self.vit.train()
        self.proxy.train()
        start_s = time.perf_counter()
        before = self.counters.as_dict()
        order = torch.randperm(self.num_train, generator=self.shuffle_generator).to(self.device)
        vit_losses, proxy_losses, weights = [], [], []

        batches = range(0, self.num_train, self.cfg.batch_size)
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", unit="batch", leave=False,
                   disable=not (self.progress and logger.isEnabledFor(logging.INFO)))
        for start in bar:
            step = self.train_step(order[start : start + self.cfg.batch_size])
            if step["admitted"]:
                vit_losses.append(step["vit_loss"])
                weights.append(step["admitted"])
            if not math.isnan(step["proxy_loss"]):
                proxy_losses.append(step["proxy_loss"])
        train_s = time.perf_counter() - start_s

        evaluation = self.evaluate()
        epoch_s = time.perf_counter() - start_s
        self.epoch += 1
        metrics = self._epoch_metrics(before, vit_losses, weights, proxy_losses, evaluation, train_s, epoch_s)
        return EpochResult(epoch=self.epoch, metrics=metrics)

    def _epoch_metrics(self, before, vit_losses, weights, proxy_losses, evaluation, train_s, epoch_s) -> dict:
        now = self.counters.as_dict()
        delta = {key: now[key] - before[key] for key in now}
        seen = max(1, delta["samples_seen"])
        spent = (
            delta["vit_forward"] * self.flops["vit"]
            + delta["proxy_backward"] * (self.flops["proxy"] - self.flops["proxy_forward"])
            + delta["proxy_forward"] * self.flops["proxy_forward"]
        )
        threshold = self.gate.threshold if self.gate_mode == "on" else float("nan")
        return {
            "epoch": self.epoch,
            "train/vit_loss": float(np.average(vit_losses, weights=weights)) if vit_losses else float("nan"),
            "train/proxy_loss": float(np.mean(proxy_losses)) if proxy_losses else float("nan"),
            "train/lr": float(self.vit_scheduler.get_last_lr()[0]),
            "eval/accuracy": evaluation["accuracy"],
            "eval/loss": evaluation["loss"],
            "eval/proxy_accuracy": evaluation["proxy_accuracy"],
            "gate/activation_rate": delta["vit_forward"] / seen,
            "gate/threshold": float(threshold),
            "compute/samples_seen": delta["samples_seen"],
            "compute/vit_forward": delta["vit_forward"],
            "compute/vit_backward": delta["vit_backward"],
            "compute/proxy_forward": delta["proxy_forward"],
            "compute/proxy_backward": delta["proxy_backward"],
            "compute/admitted_share": delta["vit_backward"] / seen,
            "compute/flops_share": spent / (seen * self.flops["vit"]),
            "time/train_s": train_s,
            "time/epoch_s": epoch_s,
        }

    # -----------------------------------------------------------------------------------------
    # Validation
    # -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """ViT accuracy and mean loss, and proxy accuracy, on the test split."""
        self.vit.eval()
        self.proxy.eval()
        correct = proxy_correct = 0
        total_loss = 0.0
        for start in range(0, len(self.test_labels), self.cfg.eval_batch_size):
            images = normalize(to_float(self.test_images[start : start + self.cfg.eval_batch_size]), self.mean, self.std)
            if self.use_cuda_features and self.cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = self.test_labels[start : start + self.cfg.eval_batch_size]
            with self._autocast():
                logits = self._vit_call(images).float()
                proxy_logits = self._proxy_call(images).float()
            total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
            proxy_correct += int((proxy_logits.argmax(1) == labels).sum())
        self.vit.train()
        self.proxy.train()
        count = max(1, len(self.test_labels))
        return {"accuracy": correct / count, "loss": total_loss / count, "proxy_accuracy": proxy_correct / count}

    # -----------------------------------------------------------------------------------------
    # Checkpoints
    # -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "gate_mode": self.gate_mode,
            "best_accuracy": self.best_accuracy,
            "vision_config": config_to_dict(self.cfg),
            "vit": self.vit.state_dict(),
            "proxy": self.proxy.state_dict(),
            "vit_optimizer": self.vit_optimizer.state_dict(),
            "proxy_optimizer": self.proxy_optimizer.state_dict(),
            "vit_scheduler": self.vit_scheduler.state_dict(),
            "gate": _to_tensors(self.gate.state_dict()),
            "significance": _to_tensors(self.significance.state_dict()),
            "memory": self.memory.state_dict(),
            "class_windows": [torch.from_numpy(values.copy()) for values in self.class_windows],
            "counters": self.counters.as_dict(),
            "rng": {
                "shuffle": self.shuffle_generator.get_state(),
                "augment": self.augment_generator.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            },
        }

    def load_state_dict(self, state: dict[str, Any], *, source: str = "checkpoint") -> None:
        """Restore everything `state_dict` saved; the architecture and gate mode must match."""
        saved = state["vision_config"]
        current = config_to_dict(self.cfg)
        changed = [
            f"{name} ({saved.get(name)!r} -> {current.get(name)!r})"
            for name in _ARCHITECTURE_FIELDS
            if name in current and saved.get(name) != current.get(name)
        ]
        if changed:
            raise CheckpointError(f"{source}: the model settings changed since the checkpoint: {', '.join(changed)}")
        if state["gate_mode"] != self.gate_mode:
            raise CheckpointError(
                f"{source}: the run used --gate {state['gate_mode']}, not --gate {self.gate_mode}; "
                "resume with the same gate mode"
            )
        if state["memory"]["last_loss"].shape[0] != self.num_train:
            raise CheckpointError(
                f"{source}: the run trained on {state['memory']['last_loss'].shape[0]} images, this "
                f"dataset has {self.num_train}; resume on the same data and vision.train_subset"
            )

        self.epoch = int(state["epoch"])
        self.best_accuracy = float(state["best_accuracy"])
        self.vit.load_state_dict(state["vit"])
        self.proxy.load_state_dict(state["proxy"])
        self.vit_optimizer.load_state_dict(state["vit_optimizer"])
        self.proxy_optimizer.load_state_dict(state["proxy_optimizer"])
        self.vit_scheduler.load_state_dict(state["vit_scheduler"])
        self.gate.load_state_dict(_from_tensors(state["gate"]))
        self.significance.load_state_dict(_from_tensors(state["significance"]))
        self.memory.load_state_dict(state["memory"])
        self.class_windows = [values.numpy().copy() for values in state["class_windows"]]
        self.counters = ComputeCounters(**state["counters"])
        self.shuffle_generator.set_state(state["rng"]["shuffle"])
        self.augment_generator.set_state(state["rng"]["augment"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def _significance_inputs(signals: CheapSignals) -> SignificanceInputs:
    """Map the cheap signals onto the significance components.

    learning value: the stale ViT loss (what the ViT still got wrong at its last visit);
    difficulty: the proxy loss now; uncertainty: the proxy's normalized entropy; novelty: the
    distance of the proxy's class probabilities to those of images already trained on. Images
    carry no context, so no familiarity discount applies; staleness reaches the score through
    the stale loss, which falls as the ViT learns an image.
    """
    return SignificanceInputs(
        learning_value=signals.stale_loss,
        difficulty=signals.proxy_loss,
        uncertainty=signals.proxy_entropy,
        novelty_features=signals.features,
        physical=None,
        context=None,
    )


def _to_tensors(value: Any) -> Any:
    """Convert numpy arrays and scalars inside nested containers to tensors and Python numbers."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _to_tensors(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_tensors(item) for item in value)
    return value


def _from_tensors(value: Any) -> Any:
    """Undo `_to_tensors`."""
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return value["__ndarray__"].numpy()
        return {key: _from_tensors(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_from_tensors(item) for item in value)
    return value


def train_vision(
    config: Config,
    data: Cifar10,
    *,
    run_dir: str | Path,
    device: torch.device,
    gate_mode: str = "on",
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train for ``vision.epochs`` epochs, writing metrics and checkpoints under `run_dir`.

    With `resume`, the run continues from ``checkpoints/last.pt`` after the last finished epoch.
    Without it, `run_dir` must be missing or empty. `progress` shows a per-epoch progress bar.

    Raises:
        RunDirError: `run_dir` is a file or a non-empty directory and `resume` is not set.

    Returns:
        The summary also written to ``summary.json``.
    """
    run = RunDirectory(run_dir)
    if not resume:
        check_new_run_dir(run.root, run_markers=RUN_MARKERS)
    trainer = VisionTrainer(config, data, device=device, gate_mode=gate_mode, progress=progress)
    if resume:
        path = run.checkpoint_path("last")
        trainer.load_state_dict(run.load_checkpoint("last"), source=str(path))
        run.truncate_metrics(trainer.epoch)
        logger.info("resumed %s after epoch %d", run.root, trainer.epoch)
    else:
        run.create()
    save_config(config, run.config_path)
    logger.info(
        "vision run %s: %d training and %d test images, gate %s, device %s, ViT %.1f MFLOP and proxy "
        "%.1f MFLOP per image (forward + backward)",
        run.root, trainer.num_train, len(trainer.test_labels), gate_mode, trainer.device,
        trainer.flops["vit"] / 1e6, trainer.flops["proxy"] / 1e6,
    )

    wall_start = time.perf_counter()
    while trainer.epoch < config.vision.epochs:
        result = trainer.train_epoch()
        metrics = result.metrics
        run.append_metrics(metrics)
        is_best = metrics["eval/accuracy"] > trainer.best_accuracy
        if is_best:
            trainer.best_accuracy = metrics["eval/accuracy"]
        state = trainer.state_dict()
        run.save_checkpoint("last", state)
        if is_best:
            run.save_checkpoint("best", state)
        logger.info(
            "epoch %d/%d  loss %.4f  val acc %.2f%%  activation %.1f%%  compute admitted %.1f%% "
            "(%.1f%% with proxy)  time %.1f s",
            metrics["epoch"], config.vision.epochs, metrics["train/vit_loss"], 100 * metrics["eval/accuracy"],
            100 * metrics["gate/activation_rate"], 100 * metrics["compute/admitted_share"],
            100 * metrics["compute/flops_share"], metrics["time/epoch_s"],
        )

    rows = run.read_metrics()
    summary = {
        "gate_mode": gate_mode,
        "epochs": trainer.epoch,
        "best_accuracy": trainer.best_accuracy,
        "final_accuracy": rows[-1]["eval/accuracy"] if rows else None,
        "train_time_s": sum(row["time/train_s"] for row in rows),
        "wall_time_this_session_s": time.perf_counter() - wall_start,
        "counters": trainer.counters.as_dict(),
        "flops_per_image": trainer.flops,
        "run_dir": str(run.root),
    }
    run.write_summary(summary)
    return summary


def run_vision(
    *,
    data_dir: str | Path,
    config_path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    epochs: int | None = None,
    gate_mode: str | None = None,
    device: str = "auto",
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Load the config and the dataset, then train; the entry point of ``ast-robot vision``.

    With `resume`, `run_dir` is required, and its saved ``config.yaml`` is used unless
    `config_path` is given. `overrides` and `epochs` apply on top, so ``--epochs`` can extend a
    finished run. The gate mode defaults to the checkpoint's on resume, else to ``gate.mode``.

    Raises:
        ConfigError: A setting, `epochs` or the device is invalid, or `resume` is set without `run_dir`.
        RunDirError: `run_dir` is a file or a non-empty directory and `resume` is not set.
        DatasetError: The dataset directory or one of its files is missing or invalid.
        CheckpointError: The checkpoint cannot be resumed.
    """
    from ast_robot.config import load_config
    from ast_robot.policy.device import select_device
    from ast_robot.vision.data import load_cifar10

    if resume and run_dir is None:
        raise ConfigError("resume needs the run directory to continue")
    if run_dir is None:
        run_dir = Path("runs") / time.strftime("vision-%Y%m%d-%H%M%S", time.gmtime())
    run = RunDirectory(run_dir)
    if not resume:
        # Checked before the dataset is read, so a wrong folder fails at once.
        check_new_run_dir(run.root, run_markers=RUN_MARKERS)

    overrides = list(overrides)
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs {epochs}: invalid value; expected at least 1 epoch")
        overrides.append(f"vision.epochs={epochs}")
    if resume and config_path is None:
        if not run.config_path.exists():
            raise CheckpointError(f"{run.config_path}: not found; is {run.root} a vision run directory?")
        config_path = run.config_path
    config = load_config(config_path, overrides)

    if gate_mode is None:
        gate_mode = config.gate.mode
        if resume and run.checkpoint_path("last").exists():
            gate_mode = run.load_checkpoint("last")["gate_mode"]
    try:
        torch_device = select_device(device)
    except ValueError as error:
        raise ConfigError(str(error)) from error

    # Every file is read and checked before training starts.
    data = load_cifar10(data_dir)
    return train_vision(
        config, data, run_dir=run.root, device=torch_device, gate_mode=gate_mode, resume=resume, progress=progress
    )
