"""TFLite's flatbuffer schema, as TFLite Micro's Python package ships it.

The generated module (``schema_py_generated.py``, ``flatc --python --gen-object-api``
of ``schema.fbs``) is plain Python on top of the ``flatbuffers`` package. It
is loaded from its file in the installed ``tflite-micro`` package without
importing that package, whose ``__init__`` loads TFLM's C++ interpreter:
the golden models stay plain Python.
"""

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

__all__ = ["SchemaMissing", "schema", "enum_names", "FILE_IDENTIFIER"]

#: The four bytes after the root offset of every .tflite file (schema version 3).
FILE_IDENTIFIER = b"TFL3"

_MODULE = "_mlhw_tflite_schema"
_RELATIVE = Path("tensorflow/lite/micro/python/schema_py_generated.py")


class SchemaMissing(ImportError):
    """tflite-micro (or flatbuffers) is not installed."""


@lru_cache(maxsize=1)
def schema():
    """The schema module: ``ModelT``, ``TensorT``, ``BuiltinOperator``, ... (flatc's object API)."""
    spec = importlib.util.find_spec("tflite_micro")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise SchemaMissing("tflite-micro is not installed (it ships TFLite's schema): run `make install`")
    path = Path(list(spec.submodule_search_locations)[0]) / _RELATIVE
    if not path.is_file():
        raise SchemaMissing(f"the installed tflite-micro has no {_RELATIVE}")
    try:
        import flatbuffers  # noqa: F401  (the schema module's only dependency)
    except ImportError:
        raise SchemaMissing("flatbuffers is not installed: run `make install`") from None
    module_spec = importlib.util.spec_from_file_location(_MODULE, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[_MODULE] = module
    module_spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=None)
def enum_names(enum):
    """``{value: NAME}`` of one of the schema's enum classes (``TensorType``, ``BuiltinOperator``, ...)."""
    cls = getattr(schema(), enum)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}
