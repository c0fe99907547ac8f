"""Bijections (``torch.distributions.Transform`` subclasses, data -> noise), the flow layers
(``nn.Module``) that own their parameters and build them, optionally from a context, and the
composition ``Flow(transform, base)`` of a flow layer and a base distribution.

See ``dgm.transforms.base`` for the conventions.
"""

from dgm.transforms.autoregressive import MaskedAutoregressive, MaskedAutoregressiveTransform
from dgm.transforms.base import (
    Bijection,
    ComposedBijection,
    Fixed,
    FlowLayer,
    FlowSequence,
    InverseBijection,
    Inverted,
    sum_except_batch,
)
from dgm.transforms.coupling import Coupling, CouplingTransform, make_mask
from dgm.transforms.dequantization import UniformDequantizer, VariationalDequantizer
from dgm.transforms.elementwise import (
    AffineTransform,
    ElementwiseAffine,
    LogitTransform,
    Permutation,
    PermutationTransform,
    SigmoidTransform,
    random_permutation,
    reverse_permutation,
)
from dgm.transforms.flow import Flow
from dgm.transforms.glow import (
    ActNorm,
    ActNormTransform,
    ChannelSlice,
    ChannelSliceLayer,
    Conv1x1Transform,
    InvertibleConv1x1,
    SqueezeTransform,
)
from dgm.transforms.householder import Householder, HouseholderTransform
from dgm.transforms.multiscale import MultiScale, MultiScaleTransform
from dgm.transforms.planar import Planar, PlanarTransform, Radial, RadialTransform
from dgm.transforms.splines import ElementwiseSpline, SplineTransform, rational_quadratic_spline
from dgm.transforms.sylvester import (
    SylvesterHouseholder,
    SylvesterOrthogonal,
    SylvesterTransform,
    SylvesterTriangular,
    orthogonalize,
)

__all__ = [
    "ActNorm",
    "ActNormTransform",
    "AffineTransform",
    "Bijection",
    "ChannelSlice",
    "ChannelSliceLayer",
    "ComposedBijection",
    "Conv1x1Transform",
    "Coupling",
    "CouplingTransform",
    "ElementwiseAffine",
    "ElementwiseSpline",
    "Fixed",
    "Flow",
    "FlowLayer",
    "FlowSequence",
    "Householder",
    "HouseholderTransform",
    "InverseBijection",
    "Inverted",
    "InvertibleConv1x1",
    "LogitTransform",
    "MaskedAutoregressive",
    "MaskedAutoregressiveTransform",
    "MultiScale",
    "MultiScaleTransform",
    "Permutation",
    "PermutationTransform",
    "Planar",
    "PlanarTransform",
    "Radial",
    "RadialTransform",
    "SigmoidTransform",
    "SplineTransform",
    "SqueezeTransform",
    "SylvesterHouseholder",
    "SylvesterOrthogonal",
    "SylvesterTransform",
    "SylvesterTriangular",
    "UniformDequantizer",
    "VariationalDequantizer",
    "make_mask",
    "orthogonalize",
    "random_permutation",
    "rational_quadratic_spline",
    "reverse_permutation",
    "sum_except_batch",
]
