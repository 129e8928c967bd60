"""Builds the Cython decoder from ext/ into probe._decode, the live-capture ring into probe._ring,
the sharding loop into probe._shard, and the engine's subscriber state into control._state.

TOUCHPOINT_DEBUG=1 builds with annotation, bounds checks and -O0 -g.
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("TOUCHPOINT_DEBUG") == "1"

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "embedsignature": True,
}
cflags = ["-O0", "-g"] if DEBUG else ["-O3"]
cflags += ["-Wall", "-Wno-unused-function", "-Wno-unreachable-code", "-Wno-unused-variable"]

extensions = [
    Extension(
        "touchpoint.probe._decode",
        ["ext/_decode.pyx"],
        include_dirs=["ext", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=cflags,
    ),
    Extension("touchpoint.probe._ring", ["ext/ring.pyx"], extra_compile_args=cflags),     # live capture (Linux)
    Extension("touchpoint.probe._shard", ["ext/shard.pyx"], include_dirs=[numpy.get_include()],      # sharding by subscriber
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")], extra_compile_args=cflags),
    Extension("touchpoint.control._state", ["ext/state.pyx"], include_dirs=[numpy.get_include()],     # engine state
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")], extra_compile_args=cflags),
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG,
                            include_path=["ext"]))
