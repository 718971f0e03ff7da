"""selfsup: self-supervised learning losses (libselfsup) from Python.

Pure Python over ctypes: no compile step. Two layers:

NumPy functions, one per C loss, returning the loss or, with grad=True,
(loss, gradient of every differentiable input...):

    import numpy as np, selfsup
    z = np.random.randn(2, 256, 128).astype(np.float32)  # (V, N, D)
    loss, dz = selfsup.ntxent(z, temperature=0.5, grad=True)

float32 C-contiguous arrays go to C without a copy; other dtypes and layouts
are converted. A C status becomes an exception carrying ss_last_error():
ValueError (bad sizes, parameters, labels, non-finite input, file format),
MemoryError, OSError (I/O), RuntimeError (state), NotImplementedError
(a feature or loss the loaded library lacks); all derive from SelfsupError
and carry .status ("SS_ERR_PARAM", ...).

selfsup.torch: torch.nn.Module losses with lightly's class names,
constructor parameters, defaults and forward signatures; change the import
line only:

    from selfsup.torch import NTXentLoss   # was: from lightly.loss import ...

The library is found through the SELFSUP_LIB environment variable, then the
directory `make install` put it in, then the build/ folder of a checkout,
then ctypes.util.find_library("selfsup"). selfsup.available(name) says
whether the loaded library has a loss; set_num_threads() sets the library's
OpenMP threads (torch.set_num_threads does not).
"""
from ._lib import (SelfsupError, SelfsupMemoryError, SelfsupOSError,
                   SelfsupStateError, SelfsupUnsupportedError,
                   SelfsupValueError, lib as _clib)
from ._lib import available
from .losses import (Center, Queue, TicoState, barlow, clip, dcl, dclw, dino,
                     empssl, fused_ce, hypersphere, ibot, koleo, mae, mlm,
                     mmcr, moco, msn, negcos,
                     ntxent, pmsn, siglip, supcon, swav, tico, vicreg, wmse)

__all__ = ["ntxent", "supcon", "dcl", "dclw", "moco", "clip", "siglip",
           "dino", "ibot", "swav", "msn", "pmsn", "negcos", "barlow",
           "vicreg", "tico", "wmse", "hypersphere", "koleo", "mmcr", "empssl",
           "mlm", "fused_ce", "mae",
           "Center", "Queue", "TicoState", "available",
           "set_num_threads", "get_num_threads", "library_version",
           "build_info", "SelfsupError", "SelfsupValueError",
           "SelfsupMemoryError", "SelfsupOSError", "SelfsupStateError",
           "SelfsupUnsupportedError"]

__version__ = "0.1.0"


def set_num_threads(n):
    """Threads used by later calls (0 restores the OpenMP default)."""
    from ._lib import check
    check(_clib.ss_set_num_threads(int(n)))


def get_num_threads():
    return _clib.ss_get_num_threads()


def library_version():
    """Version string of the loaded libselfsup."""
    return _clib.ss_version().decode()


def build_info():
    return _clib.ss_build_info().decode()
