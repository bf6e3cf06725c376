"""Deformable refinement: a regularised cubic B-spline on top of the rigid result.

Method: a cubic B-spline transform (control points every
``control_point_spacing_mm``, default 60 mm) optimised with Mattes mutual
information and L-BFGS-B at the working resolution (the rigid stage has
already done the coarse alignment), with the rigid transform held fixed as
the moving initial transform. The full map is ``T = R o B``
(reference point -> B -> R -> moving point), an ITK composite transform whose
last member (``B``) acts first.

Regularisation: the control-point spacing. Organ motion between sessions
(breathing state, bowel and bladder filling) is smooth on the scale of
several centimetres, so a spacing of 5-6 cm keeps the deformation physically
plausible. It does not stop the spline from partly following noise and local
session-to-session changes (bowel gas): on an undeformed sample patient it
added up to 2.8 mm of spurious displacement, so the stage is opt-in. The
result is checked for folding (Jacobian determinant) and for the optimiser
ending worse than it started by :mod:`pipeline.register.qc`.

(A diffeomorphic-demons displacement field was tried first: it followed
bowel-gas changes between sessions, folded, and took minutes per time point.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..image import Image
from ..imageio import to_sitk
from .rigid import RigidSettings, WorkingPair, evaluate_metric
from .transforms import displacement_field_ras, invert_displacement_field, jacobian_determinant

__all__ = ["DeformableSettings", "DeformableResult", "register_deformable", "composite", "inverse_field_on"]


@dataclass(frozen=True)
class DeformableSettings:
    """Parameters of the B-spline stage.

    Attributes
    ----------
    control_point_spacing_mm : float
        Control-point spacing (mm); the regularisation (larger = stiffer).
    shrink_factors : tuple of int
        Image pyramid per level, relative to the working grid.
    smoothing_sigmas_mm : tuple of float
        Gaussian smoothing per level (mm).
    metric_samples : int
        Random metric samples per level (fixed seed). ITK's Mattes metric costs
        samples x parameters per evaluation for a B-spline, so keep this modest.
    histogram_bins : int
        Mattes MI histogram bins.
    iterations : int
        Maximum L-BFGS-B iterations per level.
    max_evaluations : int
        Maximum metric evaluations per level.
    seed : int
        Sampling seed.
    """

    control_point_spacing_mm: float = 60.0
    shrink_factors: tuple = (1,)
    smoothing_sigmas_mm: tuple = (0.0,)
    metric_samples: int = 20000
    histogram_bins: int = 50
    iterations: int = 30
    max_evaluations: int = 60
    seed: int = 20260105


@dataclass(frozen=True)
class DeformableResult:
    """Outcome of :func:`register_deformable`.

    Attributes
    ----------
    rigid : SimpleITK.Euler3DTransform
        The rigid transform it started from (reference -> moving, LPS).
    field : SimpleITK.BSplineTransform
        The B-spline ``B`` (reference space, acts first).
    metric_rigid, metric_final : float
        Mattes MI (lower is better) with the rigid and with the full transform,
        evaluated on the rigid QC's samples (information: with thousands of
        coefficients the B-spline also fits noise and session-to-session
        changes such as bowel gas, which a fresh sample set can penalise).
    optimiser_start, optimiser_final : float
        The optimiser's own metric at its first and last iteration (lower is
        better); the failure rule compares these.
    min_jacobian, max_jacobian : float
        Extremes of the Jacobian determinant of ``B`` inside the metric mask.
    max_displacement_mm : float
        Largest ``|B(x) - x|`` inside the metric mask (mm).
    elapsed_s : float
        Wall time (s).
    """

    rigid: object
    field: object
    metric_rigid: float
    metric_final: float
    optimiser_start: float
    optimiser_final: float
    min_jacobian: float
    max_jacobian: float
    max_displacement_mm: float
    elapsed_s: float

    @property
    def transform(self):
        """The full map reference -> moving, ``R(B(x))``, as a ``SimpleITK.CompositeTransform``."""
        return composite(self.rigid, self.field)

    def parameters(self) -> dict:
        return {
            "type": "BSplineTransform (cubic) after Euler3DTransform",
            "mesh_size": [int(v) for v in sitk.BSplineTransform(self.field).GetTransformDomainMeshSize()],
            "min_jacobian": self.min_jacobian,
            "max_jacobian": self.max_jacobian,
            "max_displacement_mm": self.max_displacement_mm,
            "optimiser_metric": {"first_iteration": self.optimiser_start, "last_iteration": self.optimiser_final},
        }


def composite(rigid, field) -> sitk.CompositeTransform:
    """``R o B`` as an ITK composite (B, added last, is applied first)."""
    comp = sitk.CompositeTransform(3)
    comp.AddTransform(rigid)
    comp.AddTransform(field)
    return comp


def register_deformable(pair: WorkingPair, rigid_transform, settings: DeformableSettings | None = None,
                        rigid_settings: RigidSettings | None = None) -> DeformableResult:
    """Refine a rigid registration with a regularised B-spline.

    Parameters
    ----------
    pair : WorkingPair
        Working images and metric mask of the rigid stage.
    rigid_transform : SimpleITK.Euler3DTransform
        Reference -> moving rigid transform.
    settings : DeformableSettings, optional
    rigid_settings : RigidSettings, optional
        For the before/after metric on the rigid QC's samples.
    """
    settings = settings or DeformableSettings()
    rigid_settings = rigid_settings or RigidSettings()
    start = time.perf_counter()
    fixed, moving = to_sitk(pair.fixed), to_sitk(pair.moving)
    extent = np.asarray(fixed.GetSize(), float) * np.asarray(fixed.GetSpacing(), float)
    mesh = [max(int(np.ceil(e / settings.control_point_spacing_mm)), 1) for e in extent]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, 3)

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    n_mask = max(int(np.count_nonzero(pair.metric_mask.array)), 1)
    fractions = [float(min(1.0, settings.metric_samples * s ** 3 / n_mask)) for s in settings.shrink_factors]
    reg.SetMetricSamplingPercentagePerLevel(fractions, settings.seed)
    reg.SetMetricFixedMask(to_sitk(pair.metric_mask))
    reg.SetMetricUseFixedImageGradientFilter(False)
    reg.SetMetricUseMovingImageGradientFilter(False)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    reg.SetSmoothingSigmasPerLevel(list(settings.smoothing_sigmas_mm))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=settings.iterations,
                             maximumNumberOfCorrections=5,
                             maximumNumberOfFunctionEvaluations=settings.max_evaluations,
                             costFunctionConvergenceFactor=1e9)
    reg.SetMovingInitialTransform(rigid_transform)
    reg.SetInitialTransform(bspline, inPlace=True)
    trace = []
    reg.AddCommand(sitk.sitkIterationEvent, lambda: trace.append(reg.GetMetricValue()))
    reg.Execute(fixed, moving)
    elapsed = time.perf_counter() - start

    u = displacement_field_ras(bspline, pair.fixed)
    jac = jacobian_determinant(u, pair.fixed)
    inside = np.asarray(pair.metric_mask.array, bool)
    return DeformableResult(
        rigid=rigid_transform,
        field=bspline,
        metric_rigid=evaluate_metric(pair, rigid_transform, rigid_settings),
        metric_final=evaluate_metric(pair, composite(rigid_transform, bspline), rigid_settings),
        optimiser_start=float(trace[0]) if trace else float("nan"),
        optimiser_final=float(trace[-1]) if trace else float("nan"),
        min_jacobian=float(jac[inside].min()),
        max_jacobian=float(jac[inside].max()),
        max_displacement_mm=float(np.linalg.norm(u, axis=-1)[inside].max()),
        elapsed_s=elapsed,
    )


def inverse_field_on(field_transform, grid: Image):
    """Inverse displacement of a deformable transform on ``grid`` (RAS+ mm) and the inversion residual (mm)."""
    u = displacement_field_ras(field_transform, grid)
    return invert_displacement_field(u, grid)
