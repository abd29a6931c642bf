"""Errors that mean "the user gave bad input": the CLI prints them as one line and exits 2."""


class InputError(Exception):
    """Bad input (a file, a flag, a value). The message names the problem and the file or flag."""


EXIT_INPUT_ERROR = 2
