"""The sparse-attention transformer policy and the proxy model."""

from ast_robot.policy.attention import SparseAttention, SparseTransformerBlock
from ast_robot.policy.common import ObservationNormalizer, PolicyOutput
from ast_robot.policy.device import autocast, select_device
from ast_robot.policy.proxy import ProxyPolicy
from ast_robot.policy.transformer import TransformerPolicy

__all__ = [
    "ObservationNormalizer",
    "PolicyOutput",
    "ProxyPolicy",
    "SparseAttention",
    "SparseTransformerBlock",
    "TransformerPolicy",
    "autocast",
    "select_device",
]
