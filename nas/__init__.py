"""The nas service: CLI, controller, Ray dispatch, database, export, reports."""

from nas.errors import BadInput
from nas.refs import resolve_ref

__all__ = ["BadInput", "resolve_ref"]
