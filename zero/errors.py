"""Errors that the person running the code can fix, told apart from bugs."""


class SetupError(RuntimeError):
    """Something the person running the code must set up: the MNIST files (none at the data folder and
    none to download), CuPy and a GPU for device 'cuda'. A step script shows only its message, without
    a traceback, and exits with status 2, as for a wrong option (zero.cli.parse_options)."""
