"""zero: a small autograd engine on NumPy (CPU) and CuPy (GPU)."""
