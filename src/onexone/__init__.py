"""onexone: the 1x1 (pointwise) convolution for NumPy, as fast as the CPU allows.

>>> import numpy as np, onexone
>>> x = np.random.rand(1, 256, 56, 56).astype(np.float32)
>>> w = np.random.rand(64, 256, 1, 1).astype(np.float32)
>>> onexone.conv1x1(x, w, activation="relu").shape
(1, 64, 56, 56)
"""
__version__ = "0.1.0"

from . import layers, reference
from ._config import (
    available_isas,
    get_isa,
    get_num_threads,
    set_isa,
    set_num_threads,
    show_config,
)
from ._ops import conv1x1, conv1x1_backward, conv2d, conv2d_backward

__all__ = [
    "conv1x1",
    "conv1x1_backward",
    "conv2d",
    "conv2d_backward",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "available_isas",
    "get_isa",
    "set_isa",
    "reference",
    "layers",
]
