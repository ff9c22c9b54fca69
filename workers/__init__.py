"""What runs on a worker: data loading and augmentation, the training loop, the Ray task."""
