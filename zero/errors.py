"""Errors that the person running the code can fix, told apart from bugs."""


class SetupError(RuntimeError):
    """Something the person running the code must set up or choose again: the MNIST files (none at the
    data folder and none to download), CuPy and a GPU for device 'cuda', a learning rate that made
    training diverge. A step script shows only its message, without a traceback, and exits with
    status 2, as for a wrong option (zero.cli.parse_options)."""


class CheckpointRefused(SetupError, ValueError):
    """A checkpoint that a script was asked to resume from does not fit the run: written for another
    model or with other settings, or corrupt. The person running it chooses: the run's settings, another
    --checkpoint, or no --resume. A ValueError too, like load_checkpoint's own errors."""


class DataFileDamaged(SetupError, ValueError):
    """A data file that is there but fails its checks (an MNIST file corrupt, truncated or of another kind): the
    message names it and says how to replace it. A ValueError too, like the checks' own errors."""


class SaveFailed(SetupError, OSError):
    """A file could not be written (the disk full, a read-only disk, no permission): the message names the
    file being saved, not its temporary, and says that the previous one, if any, is unchanged. An OSError
    too, with the errno of the error it stands for."""


class TrainingDiverged(SetupError, FloatingPointError):
    """A training run whose loss or weights became NaN or infinite: the run stops there, before saving
    anything, so that a checkpoint it would have replaced stays as it was. The person running it
    chooses again: most often a smaller learning rate. A FloatingPointError too, like NumPy's own."""


class SamplingDiverged(SetupError, FloatingPointError):
    """A sampling chain whose images became NaN or infinite (a guidance scale too large for the model's
    float dtype, say): nothing is returned, since clipping would keep the NaN and a classifier would read
    it as some digit. The person running it chooses again: most often a smaller guidance scale."""
