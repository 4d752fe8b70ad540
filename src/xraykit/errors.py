"""The one error type users see: a problem with their input, said in one line.

The CLI prints ``XrayError`` messages without a traceback and exits with code 2; any
other exception is a bug in xraykit and keeps its traceback.
"""


class XrayError(Exception):
    """Bad input (a file, a folder, a name, an option): the message says what and where."""


class ImageError(XrayError):
    """An image file that cannot be read as an X-ray; the message names the file."""


class CheckpointError(XrayError):
    """A weights or checkpoint file that cannot be loaded safely or does not fit the model."""


class WeightsUnavailableError(XrayError):
    """Pretrained weights that are neither cached nor downloadable (offline)."""
