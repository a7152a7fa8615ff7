"""Benchmarks and the plain NumPy/SciPy reference implementation they compare against."""
