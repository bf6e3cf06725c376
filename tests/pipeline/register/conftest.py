"""Fixtures of the registration tests (helpers in register_phantom.py)."""

from __future__ import annotations

import pytest
import SimpleITK as sitk

from register_phantom import phantom


@pytest.fixture(scope="session")
def torso():
    """(ct, labels, activity) of the analytic phantom at 3 mm."""
    return phantom()


@pytest.fixture(scope="session")
def real_ct_4mm(real_ct_dir):
    """The real GE Optima 540 CT, read with SimpleITK, averaged to about 4 x 4 x 5 mm (HU, Image)."""
    from pipeline.imageio import from_sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(real_ct_dir)))
    image = sitk.Clamp(reader.Execute(), sitk.sitkFloat32, -1000.0, 3000.0)  # -3024 padding -> air
    return from_sitk(sitk.BinShrink(image, [4, 4, 2]), "HU")
