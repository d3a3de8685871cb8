"""Network pieces shared by the three systems (sub-modules load on first access).

* `networks`: image pre/postprocessing, the conv encoder and decoder, MLP heads, `diag_normal`;
* `convs`: strided convolutions with fast gradients on XLA:CPU (the encoder's and decoder's
  layers).
"""

from __future__ import annotations

from jaxplanet import _lazy

__all__ = ["convs", "networks"]


__getattr__, __dir__ = _lazy.submodules(__name__, __all__)
