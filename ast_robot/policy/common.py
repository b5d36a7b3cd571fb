"""Parts shared by the transformer policy and the proxy: normalizer, Gaussian head, loss, act, save/load.

Both policies map a history of observations to a Gaussian over normalized actions:

- input ``obs``: group name -> float tensor (B, H, d) with the groups and widths of
  `ast_robot.episode.OBS_GROUPS`, oldest step first; ``pad_mask`` bool (B, H), True at padded
  steps (a history shorter than H is left-padded);
- output `PolicyOutput`: action mean (B, 4), log standard deviation (B, 4) and the last hidden
  features (B, F).

A sample whose every step is padded gives zeros for the mean, log standard deviation and
features, and is left out of the loss.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ast_robot.config import ConfigError, PolicyConfig, config_from_dict, config_to_dict
from ast_robot.episode import ACTION_DIM, OBS_GROUPS
from ast_robot.errors import CheckpointError

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ast-robot-policy"
CHECKPOINT_VERSION = 1


@dataclass
class PolicyOutput:
    """A policy's forward result.

    Attributes:
        mean: Action mean, normalized action units (B, ACTION_DIM).
        log_std: Log standard deviation of the action, (B, ACTION_DIM).
        features: Last hidden features the head reads, (B, F).
        valid: bool (B,), False for samples whose every step is padded.
    """

    mean: Tensor
    log_std: Tensor
    features: Tensor
    valid: Tensor


class ObservationNormalizer(nn.Module):
    """Running per-group mean and variance; normalizes and clips observations.

    The statistics are float64 buffers, so they travel with `.to(device)`, `state_dict()` and
    the saved checkpoint. Non-finite readings (missing sensors) are skipped when updating and
    become 0 (the mean) when normalizing.
    """

    def __init__(self, groups: dict[str, int] = OBS_GROUPS, *, clip: float = 5.0, eps: float = 1e-6):
        super().__init__()
        self.groups = dict(groups)
        self.clip = clip
        self.eps = eps
        for name, width in self.groups.items():
            self.register_buffer(f"mean_{name}", torch.zeros(width, dtype=torch.float64))
            self.register_buffer(f"var_{name}", torch.ones(width, dtype=torch.float64))
            self.register_buffer(f"count_{name}", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: dict[str, Tensor | np.ndarray]) -> None:
        """Merge a batch into the statistics; each group (..., d), rows with NaN/Inf skipped."""
        for name, width in self.groups.items():
            if name not in batch:
                raise KeyError(f"observation batch has no group {name!r}; it has {sorted(batch)}")
            device = getattr(self, f"mean_{name}").device
            values = torch.as_tensor(batch[name]).to(device=device, dtype=torch.float64)
            if values.shape[-1] != width:
                raise ValueError(
                    f"observation group {name!r} has width {values.shape[-1]}, expected {width}"
                )
            values = values.reshape(-1, width)
            values = values[torch.isfinite(values).all(-1)]
            if len(values) == 0:
                continue
            self._merge(name, values)

    def _merge(self, name: str, values: Tensor) -> None:
        """Combine running and batch moments (Chan et al.'s parallel variance update)."""
        mean, var, count = (getattr(self, f"{key}_{name}") for key in ("mean", "var", "count"))
        batch_count = float(len(values))
        batch_mean = values.mean(0)
        batch_var = values.var(0, unbiased=False)
        total = count + batch_count
        delta = batch_mean - mean
        new_mean = mean + delta * batch_count / total
        m2 = var * count + batch_var * batch_count + delta.square() * count * batch_count / total
        mean.copy_(new_mean)
        var.copy_(m2 / total)
        count.copy_(total)

    def forward(self, obs: dict[str, Tensor], dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        """Normalize each group (..., d) to (..., d), clipped to +-clip.

        The result has ``dtype``, or the input's floating dtype when None.
        """
        out = {}
        for name in self.groups:
            x = obs[name]
            if dtype is not None or not x.is_floating_point():
                x = x.to(dtype or torch.get_default_dtype())
            mean = getattr(self, f"mean_{name}").to(x.dtype)
            std = (getattr(self, f"var_{name}") + self.eps).sqrt().to(x.dtype)
            z = ((x - mean) / std).clamp(-self.clip, self.clip)
            out[name] = torch.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        return out


class GaussianHead(nn.Module):
    """Map features (B, F) to an action mean and a bounded log standard deviation, (B, 4) each."""

    def __init__(self, features: int, *, log_std_min: float, log_std_max: float):
        super().__init__()
        self.linear = nn.Linear(features, 2 * ACTION_DIM)
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max
        # Start at a standard deviation of 1 (log 0) when the bounds allow it, so the first
        # negative log-likelihoods are moderate.
        start = min(max(0.0, log_std_min + 0.1 * (log_std_max - log_std_min)), log_std_max - 1e-3)
        fraction = (start - log_std_min) / (log_std_max - log_std_min)
        with torch.no_grad():
            self.linear.bias[ACTION_DIM:] = math.log(fraction / (1.0 - fraction))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mean, raw = self.linear(features).chunk(2, dim=-1)
        # A sigmoid keeps the bound smooth, where a clamp would stop the gradient at the edges.
        span = self.log_std_max - self.log_std_min
        log_std = self.log_std_min + span * torch.sigmoid(raw)
        return mean, log_std


class PolicyBase(nn.Module):
    """Loss, statistics, batch-1 acting and save/load for a policy that implements `forward`."""

    kind = "base"

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.normalizer = ObservationNormalizer(clip=cfg.obs_clip)

    def forward(self, obs: dict[str, Tensor], pad_mask: Tensor | None = None) -> PolicyOutput:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def update_normalizer(self, obs_batch: dict[str, Tensor | np.ndarray]) -> None:
        """Merge observations, each group (..., d), into the normalizer statistics."""
        self.normalizer.update(obs_batch)

    # -- training ------------------------------------------------------------------------------

    def loss(
        self, obs: dict[str, Tensor], pad_mask: Tensor | None, target_actions: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Imitation loss against target actions (B, 4).

        total = mse + nll_weight * nll + indexer_loss_weight * indexer, where mse and nll are
        averaged over valid samples (fully padded samples are left out; a batch with none gives
        0 with finite gradients).

        Returns:
            The total loss (scalar) and its detached parts ``mse``, ``nll``, ``indexer``,
            ``total``.
        """
        output = self(obs, pad_mask)
        per_sample_mse, per_sample_nll = self._per_sample_losses(output, target_actions)
        valid = output.valid.to(per_sample_mse.dtype)
        count = valid.sum().clamp(min=1.0)
        mse = (per_sample_mse * valid).sum() / count
        nll = (per_sample_nll * valid).sum() / count
        indexer = self._indexer_loss()
        if indexer is None:
            indexer = torch.zeros((), device=mse.device, dtype=mse.dtype)

        total = mse + self.cfg.nll_weight * nll + self.cfg.indexer_loss_weight * indexer
        parts = {
            "mse": mse.detach(),
            "nll": nll.detach(),
            "indexer": indexer.detach(),
            "total": total.detach(),
        }
        return total, parts

    def _indexer_loss(self) -> Tensor | None:
        return None

    def _per_sample_losses(self, output: PolicyOutput, target: Tensor) -> tuple[Tensor, Tensor]:
        """Return per-sample mean-squared error and Gaussian NLL, (B,) each."""
        target = torch.where(output.valid[:, None], target, torch.zeros((), dtype=target.dtype))
        error = target.to(output.mean.dtype) - output.mean
        mse = error.square().mean(-1)
        inv_var = torch.exp(-2.0 * output.log_std)
        nll = (0.5 * error.square() * inv_var + output.log_std + 0.5 * math.log(2 * math.pi)).mean(-1)
        return mse, nll

    @torch.no_grad()
    def step_stats(self, output: PolicyOutput, labels: Tensor | None = None) -> dict[str, Tensor]:
        """Cheap per-sample statistics for the significance model, (B,) each.

        ``pred_error_norm``: L2 norm of mean - label; ``hidden_norm``: L2 norm of the features;
        ``action_std``: mean standard deviation over action dimensions; ``imitation_loss``:
        mean-squared error against the label. Without labels the two label-based stats are NaN.
        """
        stats = {
            "hidden_norm": output.features.norm(dim=-1),
            "action_std": output.log_std.exp().mean(-1),
        }
        if labels is None:
            nan = torch.full_like(stats["hidden_norm"], float("nan"))
            stats["pred_error_norm"] = nan
            stats["imitation_loss"] = nan.clone()
        else:
            error = labels.to(output.mean) - output.mean
            stats["pred_error_norm"] = error.norm(dim=-1)
            stats["imitation_loss"] = error.square().mean(-1)
        return stats

    # -- deployment ----------------------------------------------------------------------------

    def action_from_mean(self, mean: Tensor) -> Tensor:
        """Map Gaussian means (..., 4) to actions in [-1, 1] by `cfg.action_squash` (clip or tanh)."""
        if self.cfg.action_squash == "tanh":
            return torch.tanh(mean)
        return mean.clamp(-1.0, 1.0)

    def act(
        self, obs_history: dict[str, np.ndarray], *, return_stats: bool = False
    ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """Choose one action from a history, batch 1, without autograd.

        Args:
            obs_history: Group name -> array (h, d), oldest step first. A history shorter than
                H is left-padded; a longer one is cut to its last H steps.
            return_stats: Also return ``hidden_norm`` and ``action_std`` as floats.

        Returns:
            The action mean mapped to [-1, 1] (see `action_from_mean`), float32 (4,), and its
            standard deviation,
            float32 (4,); with return_stats, also the stats dict.
        """
        history = self.cfg.history
        obs, pad_mask = history_to_batch(obs_history, history, self.device)
        with torch.inference_mode():
            output = self(obs, pad_mask)
        action = self.action_from_mean(output.mean[0]).cpu().numpy().astype(np.float32)
        std = output.log_std[0].exp().cpu().numpy().astype(np.float32)
        if not return_stats:
            return action, std
        stats = {
            "hidden_norm": float(output.features[0].norm()),
            "action_std": float(std.mean()),
        }
        return action, std, stats

    # -- save and load -------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the weights and buffers as safetensors at path, and the config as JSON beside it.

        Returns the JSON path (``path`` with the suffix ``.json``).
        """
        from safetensors.torch import save_file

        path = Path(path)
        header = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "kind": self.kind,
            "saved_on_device": str(self.device),
            "config": config_to_dict(self.cfg),
        }
        tensors = {name: t.detach().contiguous() for name, t in self.state_dict().items()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(tensors, str(path), metadata={"header": json.dumps(header)})
            json_path = path.with_suffix(".json")
            json_path.write_text(json.dumps(header, indent=2) + "\n")
        except OSError as error:
            raise CheckpointError(f"could not write policy to {path}: {error}") from error
        return json_path

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device | None = "cpu") -> "PolicyBase":
        """Load a policy written by `save`.

        Args:
            path: The safetensors file.
            map_location: Device for the weights. None uses the device the model was saved
                from when it exists here, else the CPU.

        Raises:
            CheckpointError: The file is missing or unreadable, contains another kind of policy,
                or its tensors do not fit the saved config.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"policy file {path} not found")
        header = _read_header(path)
        if header.get("kind") != cls.kind:
            raise CheckpointError(
                f"{path} contains a {header.get('kind')!r} policy; load it with the matching class "
                f"instead of {cls.__name__}"
            )
        try:
            cfg = config_from_dict({"policy": header["config"]}, source_name=str(path)).policy
        except ConfigError as error:
            raise CheckpointError(f"{path}: the saved policy config is invalid: {error}") from error

        device = _resolve_map_location(map_location, header.get("saved_on_device", "cpu"))
        try:
            state = load_file(str(path), device=str(device))
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"could not read tensors from {path}: {error}") from error

        model = cls(cfg).to(device)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise CheckpointError(f"{path}: the tensors do not fit the saved config: {error}") from error
        model.eval()
        return model


def _read_header(path: Path) -> dict[str, Any]:
    """Read the header from the JSON beside path, or from the safetensors metadata."""
    json_path = path.with_suffix(".json")
    try:
        if json_path.is_file():
            header = json.loads(json_path.read_text())
        else:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            if "header" not in metadata:
                raise CheckpointError(f"{path} has no policy header and no {json_path.name} beside it")
            header = json.loads(metadata["header"])
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"could not read the policy header of {path}: {error}") from error
    if header.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an ast-robot policy (format {header.get('format')!r})")
    if header.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has policy format version {header.get('version')}, this ast-robot reads "
            f"version {CHECKPOINT_VERSION}"
        )
    return header


def _resolve_map_location(map_location: str | torch.device | None, saved_on: str) -> torch.device:
    if map_location is not None:
        return torch.device(map_location)
    saved = torch.device(saved_on)
    if saved.type == "cuda" and not torch.cuda.is_available():
        logger.warning("policy was saved on %s, which is not available here; loading on the CPU", saved_on)
        return torch.device("cpu")
    return saved


def history_to_batch(
    obs_history: dict[str, np.ndarray], history: int, device: torch.device
) -> tuple[dict[str, Tensor], Tensor]:
    """Turn one history (group -> (h, d)) into a batch of one: obs (1, H, d), pad_mask (1, H)."""
    lengths = set()
    for name, width in OBS_GROUPS.items():
        if name not in obs_history:
            raise KeyError(f"observation history has no group {name!r}; it has {sorted(obs_history)}")
        shape = np.shape(obs_history[name])
        if len(shape) != 2 or shape[1] != width:
            raise ValueError(f"observation history group {name!r} has shape {shape}, expected (h, {width})")
        lengths.add(shape[0])
    if len(lengths) != 1:
        raise ValueError(f"observation history groups have different lengths {sorted(lengths)}")
    length = lengths.pop()
    if length == 0:
        raise ValueError("observation history is empty; pass at least the current step")

    kept = min(length, history)
    pad = history - kept
    obs = {}
    for name, width in OBS_GROUPS.items():
        steps = torch.zeros(1, history, width, dtype=torch.float32)
        steps[0, pad:] = torch.as_tensor(np.asarray(obs_history[name][-kept:], dtype=np.float32))
        obs[name] = steps.to(device)
    pad_mask = torch.zeros(1, history, dtype=torch.bool)
    pad_mask[0, :pad] = True
    return obs, pad_mask.to(device)


def check_obs(obs: dict[str, Tensor], pad_mask: Tensor | None, history: int) -> tuple[int, int, Tensor]:
    """Validate a batch; return (B, h, pad_mask bool (B, h)). h may be shorter than H."""
    for name, width in OBS_GROUPS.items():
        if name not in obs:
            raise KeyError(f"observation batch has no group {name!r}; it has {sorted(obs)}")
        if obs[name].dim() != 3 or obs[name].shape[-1] != width:
            raise ValueError(
                f"observation group {name!r} has shape {tuple(obs[name].shape)}, expected (B, H, {width})"
            )
    batch, steps = obs["proprio"].shape[:2]
    for name in OBS_GROUPS:
        if obs[name].shape[:2] != (batch, steps):
            raise ValueError(
                f"observation group {name!r} has batch and steps {tuple(obs[name].shape[:2])}, "
                f"expected {(batch, steps)} like 'proprio'"
            )
    if steps > history or steps == 0:
        raise ValueError(f"observation history has {steps} steps, expected 1 to {history}")
    if pad_mask is None:
        pad_mask = torch.zeros(batch, steps, dtype=torch.bool, device=obs["proprio"].device)
    elif tuple(pad_mask.shape) != (batch, steps):
        raise ValueError(f"pad_mask has shape {tuple(pad_mask.shape)}, expected {(batch, steps)}")
    return batch, steps, pad_mask.to(torch.bool)

