"""Measurement harnesses that run the real MPC frameworks; ``hawkeye-onnx validate`` runs them.

These modules are *not* imported by the profiler: each runs as a script in the framework's own
interpreter (CrypTen needs torch 2.13, SPU pins jax 0.4.34 and numpy 1.26, which clash with the
profiler's environment), started by ``hawkeye_onnx.validate`` as ``python run.py BACKEND JOBS OUT``.
They import nothing from ``hawkeye_onnx``; the files ship inside the package so an installed
hawkeye-onnx can find them.
"""
