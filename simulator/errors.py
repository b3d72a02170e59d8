"""The one error type users see: a one-line message naming the file and field at fault."""


class SpineSimError(Exception):
    """A problem with the user's input (file, field, command), reported as one line.

    Parameters
    ----------
    message : str
        The whole message, already naming the file and field where there is one.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class CommandRefused(SpineSimError):
    """A trainee command that cannot be carried out (it changes nothing)."""
