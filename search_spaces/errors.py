"""The one base class for errors the user can fix, and the distribution's name and version.

Torch-free on purpose: the CLI catches `InputError` once in `main()` (exit code 2) and must
be able to import it without loading torch, so that `nas --help` and the read-only commands
answer at once.
"""

from __future__ import annotations

DISTRIBUTION = "nas-cells"  # the name on PyPI (`nas` there is an unrelated project)


class InputError(ValueError):
    """Bad input: an unknown name, a malformed genotype, config, file or directory.

    The message is one line that says what is wrong and how to fix it; the CLI prints it and
    exits 2. Every library error of that kind derives from this class.
    """


def package_version() -> str:
    """This package's installed version ("unknown" when run from a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
