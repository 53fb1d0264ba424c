"""The one user-facing error type. Raised anywhere, caught once in the CLI."""

from __future__ import annotations

# Exit statuses (README "Exit status"): 2 for bad input or configuration (the user can fix the
# call), 1 for failures elsewhere (network, server, engine, a hook), 3 for a bug in docpipe (the
# traceback goes to a log file), 4 when another docpipe process holds the workdir.
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_LOCKED = 4


class DocpipeError(Exception):
    """An error whose message is fit to show a user as one line.

    The message must never contain a secret (token, key, password).
    """

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    @property
    def message(self) -> str:
        return " ".join(str(self).split())


class BadInput(DocpipeError):
    """Bad input or configuration: exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=EXIT_BAD_INPUT)
