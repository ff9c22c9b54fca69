"""What runs on a worker: data loading and augmentation, the training loop, the Ray task,
the model card and checkpoints."""

from workers.card import CARD_VERSION, CardError, ModelCard

__all__ = ["CARD_VERSION", "CardError", "ModelCard"]
