"""Errors that mean "the user gave bad input": the CLI prints them as one line and exits 2."""


class InputError(Exception):
    """Bad input (a file, a flag, a value). The message names the problem and the file.

    ``field`` names the run-config field at fault (e.g. ``"batching.batch_size"``) when the
    problem is a setting rather than a file: the library speaks of config fields, and the
    command-line layer puts the matching flag in front of the message (``--batch-size: ...``).
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # keep ``field`` through pickling (errors come back from Dask workers)
        return (_rebuild, (type(self), str(self), self.field))


def _rebuild(cls, message: str, field: str | None) -> InputError:
    return cls(message, field=field)


EXIT_INPUT_ERROR = 2
