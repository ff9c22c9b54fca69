"""Checkpoints: weights in safetensors, the model card (`workers.card`) inside the same file's
metadata and beside it as JSON for people.

Nothing is ever unpickled: safetensors holds only tensors and strings. Checkpoints written
before the card (metadata key "nas", a free-form description) are read through the one
converter `workers.card.from_description`, or refused when it lacks what a card needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from search_spaces.errors import InputError
from workers.card import CardError, ModelCard, from_description
from workers.source import atomic_write as _atomic_write

CARD_KEY = "nas_card"  # the model card, JSON
OLD_KEY = "nas"  # before the card: a free-form description, JSON


class CheckpointError(InputError):
    """A file that is not a readable nas checkpoint."""


def save_checkpoint(path: Path, model: nn.Module, card: ModelCard) -> Path:
    """Save `model`'s state to `path` (.safetensors, the card in its metadata) and the card
    to path.with .json for people."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_state(path, state, card)
    _atomic_write(path.with_suffix(".json"),
                  lambda tmp: tmp.write_text(card.to_json(indent=2) + "\n"))
    return path


def save_state(path: Path, state: dict[str, torch.Tensor], card: ModelCard) -> Path:
    """Tensors and their card as one safetensors file, written atomically."""
    metadata = {CARD_KEY: card.to_json()}
    _atomic_write(Path(path), lambda tmp: save_file(state, str(tmp), metadata=metadata))
    return Path(path)


def _metadata(path: Path) -> dict[str, str]:
    """The safetensors header's metadata, without loading any tensor."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if not 0 < header_len < 100_000_000:
                raise CheckpointError(f"{path} is not a safetensors file")
            header = json.loads(f.read(header_len))
        if not isinstance(header, dict):
            raise ValueError(f"its header is a JSON {type(header).__name__}, not an object")
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError(f"its metadata is a JSON {type(metadata).__name__}, not an object")
        if not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError("its metadata values are not all strings")
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CheckpointError(f"{path} is not a safetensors checkpoint: {_line(exc)}") from None
    return metadata


def _line(exc: BaseException) -> str:
    """An exception as one short line (a JSON error may quote a long header)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:200] + "..."


def read_card(path: Path) -> ModelCard:
    """The checkpoint's model card, without loading its tensors; an old checkpoint's
    description goes through the one converter. CheckpointError says what to do."""
    path = Path(path)
    metadata = _metadata(path)
    try:
        if CARD_KEY in metadata:
            return ModelCard.from_json(metadata[CARD_KEY])
        if OLD_KEY in metadata:
            try:
                description = json.loads(metadata[OLD_KEY])
            except (ValueError, RecursionError):
                raise CardError("its old description is not JSON") from None
            return from_description(description)
    except CardError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except RecursionError:  # JSON nested deeper than Python parses
        raise CheckpointError(f"{path}: its model card is nested too deeply to be one") from None
    raise CheckpointError(f"{path} has no model card; was it written by nas? "
                          "Retrain it with `nas train` or `nas transfer`")


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """(state dict, card); refuses anything that is not safetensors."""
    card = read_card(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read weights from {path}: {exc}") from None
    return state, card
