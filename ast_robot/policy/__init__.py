"""The sparse-attention transformer policy and the proxy model."""
