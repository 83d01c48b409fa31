"""What the test suite and the benchmarks share: real servers on loopback and stacks of mediajobs processes.

Shipped with the package so that `bench/` needs nothing from `tests/`; the application never imports it.
"""
