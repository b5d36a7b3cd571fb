"""Image classification mode: CIFAR-10 data, sparse ViT and its training loop."""
