"""diffsrc: differentiable programming for plain Python by source transformation."""
from .api import grad, value_and_grad, pullback, source, ir, adjoint
from .higher import jvp, hvp, hessian, jacobian, tangent
from .export import export, ExportError
from .errors import (DiffsrcError, UnsupportedSyntaxError, NoRuleError, NonScalarOutputError,
                     NonDifferentiableError, SourceUnavailableError, TransformError)

__version__ = "0.1.0"
__all__ = ["adjoint", "grad", "value_and_grad", "pullback", "source", "ir", "export",
           "jvp", "hvp", "hessian", "jacobian", "tangent",
           "ExportError", "DiffsrcError",
           "UnsupportedSyntaxError", "NoRuleError", "NonScalarOutputError",
           "NonDifferentiableError", "SourceUnavailableError", "TransformError"]
