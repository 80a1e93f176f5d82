"""segedge: person segmentation from PyTorch training to fast edge inference.

`import segedge` stays light (numpy, opencv): torch, onnxruntime and TensorRT are imported only when used.
"""

from segedge.errors import SegedgeError
from segedge.spec import ModelSpec

__version__ = "0.1.0"
__all__ = ["ModelSpec", "Segmenter", "SegedgeError", "__version__"]


def __getattr__(name):
    if name == "Segmenter":  # lazy: keeps `import segedge` free of onnxruntime
        from segedge.runtime import Segmenter

        return Segmenter
    raise AttributeError(f"module 'segedge' has no attribute {name!r}")
