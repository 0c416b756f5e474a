"""The shipped scene files, installed with the library as the package
``warpsdf.scenes`` (data only; see :func:`warpsdf.bench.shipped_scene`)."""
