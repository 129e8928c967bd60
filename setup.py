"""Builds the Cython decoder from ext/ into probe._decode, the live-capture ring into probe._ring,
the sharding loop into probe._shard, and the engine's subscriber state into control._state.

TOUCHPOINT_DEBUG=1 builds with annotation, bounds checks and -O0 -g.
"""
import glob
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

# Every extension depends on the shared C core (a change to a header or .pxd rebuilds them all).
depends = sorted(glob.glob("ext/*.h") + glob.glob("ext/*.pxd") + glob.glob("ext/*.pxi"))
common = dict(include_dirs=["ext", numpy.get_include()], depends=depends, extra_compile_args=cflags,
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
extensions = [
    Extension("touchpoint.probe._decode", ["ext/_decode.pyx"], **common),   # the decoder
    Extension("touchpoint.probe._ring", ["ext/ring.pyx"], **common),       # live capture (Linux)
    Extension("touchpoint.probe._shard", ["ext/shard.pyx"], **common),     # sharding by subscriber
    Extension("touchpoint.control._state", ["ext/state.pyx"], **common),   # engine state
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG,
                            include_path=["ext"]))
