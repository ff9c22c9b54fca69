"""Checkpoints: weights in safetensors, the description (what the network is and how it was
trained) inside the same file's metadata and beside it as JSON for people.

Nothing is ever unpickled: safetensors holds only tensors and strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from workers.source import atomic_write as _atomic_write

METADATA_KEY = "nas"


class CheckpointError(ValueError):
    """A file that is not a readable nas checkpoint."""


def save_checkpoint(path: Path, model: nn.Module, description: dict[str, Any]) -> Path:
    """Save `model`'s state to `path` (.safetensors) and `description` to path.with .json."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(description, sort_keys=True, default=str)
    _atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={METADATA_KEY: text}))
    _atomic_write(
        path.with_suffix(".json"),
        lambda tmp: tmp.write_text(json.dumps(description, indent=2, default=str) + "\n"),
    )
    return path


def read_description(path: Path) -> dict[str, Any]:
    """The description stored in a checkpoint, without loading its tensors."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if not 0 < header_len < 100_000_000:
                raise CheckpointError(f"{path} is not a safetensors file")
            header = json.loads(f.read(header_len))
        text = header.get("__metadata__", {}).get(METADATA_KEY)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not a safetensors checkpoint: {exc}") from None
    if text is None:
        raise CheckpointError(f"{path} has no nas description; was it written by nas?")
    return json.loads(text)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, description); refuses anything that is not safetensors."""
    description = read_description(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read weights from {path}: {exc}") from None
    return state, description
