"""The one error type users see: a single line saying what went wrong and what to do."""


class PlraError(Exception):
    """An expected failure with a message meant for the user (no traceback is shown)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
