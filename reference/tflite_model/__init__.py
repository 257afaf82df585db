"""int8 TFLite models in plain Python: read (:mod:`.graph`), write (:mod:`.builder`)."""

from .builder import ModelBuilder
from .graph import Graph, ModelError, Operator, Tensor, load_model
from .schema import SchemaMissing, schema

__all__ = ["Graph", "ModelBuilder", "ModelError", "Operator", "SchemaMissing", "Tensor", "load_model", "schema"]
