"""selfsup: self-supervised learning losses (libselfsup) from Python.

NumPy functions (selfsup.ntxent, selfsup.dino, ...) call the C library
through ctypes; selfsup.torch has drop-in torch.nn.Module losses with
lightly's names and signatures. The library is found through the
SELFSUP_LIB environment variable, then the directory `make install` put it
in, then the build/ folder of a checkout, then ctypes.util.find_library.
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
