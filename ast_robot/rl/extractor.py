"""The sparse-attention transformer as SB3's features extractor, and its export back to a policy.

SB3 builds its actor and critic heads on top of a features extractor. Here that extractor is a
`TransformerPolicy` body: the observation history (H steps per group plus the padding mask)
goes in, the first global token's final features (B, d_model) come out. The actor head is a
single linear layer on those features (``net_arch pi = []``). After training it maps onto the
transformer's own Gaussian head, so the trained network becomes a plain `TransformerPolicy`
that `ast-robot eval`, replay and the ROS2 node run without SB3:

- PPO: action mean = ``action_net(features)``, a state-independent ``log_std``; exact.
- SAC: the actor's Gaussian mean before the tanh squashing becomes the mean, and SAC runs set
  ``policy.action_squash: tanh``, so the exported policy acts with ``tanh(mean)`` like SAC's
  deterministic action; exact.

Observations reach the extractor already normalized by `VecObservationNormalize`, so the
transformer's own normalizer is replaced by a pass-through while training; the export writes the
wrapper's statistics into the exported policy's normalizer.
"""

from __future__ import annotations

import gymnasium
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from ast_robot.config import PolicyConfig, config_from_dict, config_to_dict
from ast_robot.episode import ACTION_DIM, OBS_GROUPS
from ast_robot.errors import CheckpointError
from ast_robot.policy import TransformerPolicy
from ast_robot.rl.wrappers import PAD_KEY


class PassThroughNormalizer(nn.Module):
    """Identity in place of `ObservationNormalizer`, for observations that arrive normalized."""

    def forward(self, obs: dict[str, Tensor], dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        return {name: obs[name] if dtype is None else obs[name].to(dtype) for name in OBS_GROUPS}


class TransformerExtractor(BaseFeaturesExtractor):
    """`TransformerPolicy` body as an SB3 features extractor: history dict -> features (B, d_model).

    Args:
        observation_space: The `ObservationHistory` Dict space (groups (H, d), ``pad_mask`` (H,)).
        policy_config: `PolicyConfig` as a plain dict (SB3 saves keyword arguments with the model).
    """

    def __init__(self, observation_space: gymnasium.spaces.Dict, policy_config: dict):
        cfg = policy_config_from_dict(policy_config)
        super().__init__(observation_space, features_dim=cfg.d_model)
        history = observation_space[PAD_KEY].shape[0]
        if history != cfg.history:
            raise ValueError(f"observation history has {history} steps but policy.history is {cfg.history}")
        self.transformer = TransformerPolicy(cfg)
        self.transformer.normalizer = PassThroughNormalizer()

    def forward(self, observations: dict[str, Tensor]) -> Tensor:
        """Features (B, d_model) from groups (B, H, d) and ``pad_mask`` (B, H), 1.0 = padded."""
        obs = {name: observations[name] for name in OBS_GROUPS}
        pad_mask = observations[PAD_KEY] > 0.5  # (B, H) bool
        return self.transformer(obs, pad_mask).features


def policy_config_from_dict(values: dict) -> PolicyConfig:
    return config_from_dict({"policy": values}, source_name="policy_kwargs").policy


def extractor_kwargs(cfg: PolicyConfig) -> dict:
    return {"features_extractor_class": TransformerExtractor, "features_extractor_kwargs": {"policy_config": config_to_dict(cfg)}}


def _log_std_bias(log_std: Tensor, cfg: PolicyConfig) -> Tensor:
    """Pre-sigmoid raw value that makes the transformer head output `log_std` (clamped inside the range)."""
    span = cfg.log_std_max - cfg.log_std_min
    fraction = ((log_std - cfg.log_std_min) / span).clamp(1e-4, 1.0 - 1e-4)
    return torch.log(fraction / (1.0 - fraction))


def export_policy(model, normalizer_state: dict, cfg: PolicyConfig) -> TransformerPolicy:
    """Build a `TransformerPolicy` (CPU, eval mode) that acts like the SB3 model's actor.

    Args:
        model: A trained SB3 PPO or SAC whose features extractor is a `TransformerExtractor`.
        normalizer_state: `VecObservationNormalize.state_dict()` of the training env.
        cfg: The policy config the extractor was built with.
    """
    from stable_baselines3 import SAC

    policy = TransformerPolicy(cfg)
    if isinstance(model, SAC):
        extractor = model.actor.features_extractor
        mean_layer, log_std_layer = model.actor.mu, model.actor.log_std
    else:
        extractor = model.policy.pi_features_extractor
        mean_layer, log_std_layer = model.policy.action_net, None
    if not isinstance(extractor, TransformerExtractor):
        raise CheckpointError(f"the SB3 model's features extractor is {type(extractor).__name__}, not TransformerExtractor")

    state = {key: value.detach().cpu() for key, value in extractor.transformer.state_dict().items()}
    missing, unexpected = policy.load_state_dict(state, strict=False)
    if unexpected or any(not key.startswith("normalizer.") for key in missing):
        raise CheckpointError(f"extractor weights do not fit the policy: missing {missing}, unexpected {unexpected}")
    policy.normalizer.load_state_dict({key: torch.as_tensor(value) for key, value in normalizer_state.items()})

    with torch.no_grad():
        head = policy.head.linear  # (2 * ACTION_DIM, d_model): mean rows, then log-std rows
        head.weight[:ACTION_DIM] = mean_layer.weight.detach().cpu()
        head.bias[:ACTION_DIM] = mean_layer.bias.detach().cpu()
        head.weight[ACTION_DIM:] = 0.0
        if log_std_layer is None:
            log_std = model.policy.log_std.detach().cpu()  # (4,) state-independent
        else:
            # SAC's log std depends on the state; keep its value at zero features as a constant.
            log_std = log_std_layer.bias.detach().cpu().clamp(-20.0, 2.0)
        head.bias[ACTION_DIM:] = _log_std_bias(log_std, cfg)
    policy.eval()
    return policy

