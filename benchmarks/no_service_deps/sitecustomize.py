"""Refuse to import the service's packages, to prove that something runs without them.

On PYTHONPATH with NAS_BLOCK_IMPORTS=optuna,sqlalchemy,... set, every Python process started
(pytest and its subprocesses included) fails any import of those top-level packages, as on the
GPU check's machine where they are not installed. Used by the GPU check's CPU dry run
(docs/results/gpu.md) and by tests/test_gpu_check.py; it does nothing without the variable.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Sequence
from types import ModuleType


class _Blocked(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked by "
                                      "NAS_BLOCK_IMPORTS)", name=fullname)
        return None


_names = {n.strip() for n in os.environ.get("NAS_BLOCK_IMPORTS", "").split(",") if n.strip()}
if _names:
    sys.meta_path.insert(0, _Blocked(_names))
