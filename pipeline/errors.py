"""Exceptions that the command line turns into one clear line of text."""

from __future__ import annotations

import os

__all__ = ["SpectdoseError", "InputError"]


class SpectdoseError(Exception):
    """An error the user can act on; the CLI prints it without a traceback."""


class InputError(SpectdoseError):
    """Bad input: names the file (or folder) and the problem.

    Parameters
    ----------
    path : str or os.PathLike or None
        The offending file or folder.
    problem : str
        What is wrong with it, in one sentence.
    """

    def __init__(self, path, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
