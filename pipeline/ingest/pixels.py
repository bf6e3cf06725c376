"""Reading pixel data of one DICOM file, with damaged files named in the error."""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputError

__all__ = ["read_pixels"]


def read_pixels(path):
    """Stored pixel values of ``path`` and its full header.

    Returns
    -------
    array : numpy.ndarray
        ``[row, col]`` for one frame or ``[frame, row, col]``, stored values
        (no rescale applied).
    ds : pydicom.Dataset

    Raises
    ------
    InputError
        Truncated, corrupt or undecodable pixel data.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds:
            raise InputError(path, "DICOM file has no pixel data")
        array = ds.pixel_array
    except InputError:
        raise
    except Exception as exc:  # pydicom / handlers raise many kinds for damaged data
        raise InputError(path, f"pixel data truncated or unreadable ({type(exc).__name__}: {exc})") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    expected = (ds.Rows, ds.Columns) if frames == 1 else (frames, ds.Rows, ds.Columns)
    if tuple(array.shape) != tuple(expected):
        raise InputError(path, f"pixel data of shape {array.shape} do not match the header {expected}")
    return np.asarray(array), ds
