"""Plain-numpy oracles for every native kernel: the RNG re-derivation, the initializers, GEMM,
dense forward/backward, losses and optimizers. Written for clarity, not speed: each function is
the textbook formula, so a disagreement with the C++ core points at the core.
"""
from __future__ import annotations

import numpy as np

# =====================================================================================
# RNG and initializers (Philox words -> uniforms -> normals -> schemes)
# =====================================================================================


# =====================================================================================
# Kernels: GEMM, activations, dense layers, losses, optimizers, statistics
# =====================================================================================
