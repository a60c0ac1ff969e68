"""Build of onexone's C extension.

One extension module, ``onexone._core``: the Cython layer plus the C engine in ``csrc/``.
The micro-kernels for each x86 ISA are compiled in their own translation units with their
own flags (never ``-march=native``), and ``csrc/dispatch.c`` picks one at run time, so the
same wheel runs on any x86-64 CPU.

OpenMP is probed by compiling and linking a tiny program; without it the build still
succeeds, single-threaded, and ``onexone.show_config()`` says so.

Environment knobs (all optional):
  ONEXONE_DISABLE_OPENMP=1   build without OpenMP
  ONEXONE_SANITIZE=1         build with -fsanitize=address,undefined (see Makefile)
  ONEXONE_CFLAGS="..."       extra compiler flags for every C file
"""
import glob
import os
import platform
import shutil
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")

COMMON_SOURCES = [
    "csrc/dispatch.c",
    "csrc/threads.c",
    "csrc/probe.c",
    "csrc/gemm/gemm.c",
    "csrc/gemm/pack.c",
    "csrc/conv/conv1x1.c",
    "csrc/conv/conv2d_grouped.c",
    "csrc/conv/conv2d.c",
    "csrc/kernels/scalar/gemm-scalar.c",
    "csrc/kernels/scalar/direct-scalar.c",
]

# ISA-specific micro-kernels: (source, gcc/clang flags, msvc flags)
ISA_SOURCES = [
    ("csrc/kernels/avx2/gemm-avx2.c", ["-mavx2", "-mfma"], ["/arch:AVX2"]),
    ("csrc/kernels/avx512/gemm-avx512.c", ["-mavx512f", "-mavx512vl", "-mfma"], ["/arch:AVX512"]),
]

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class BuildExt(build_ext):
    def _is_msvc(self):
        return self.compiler.compiler_type == "msvc"

    def _probe_openmp(self):
        """Return (compile_args, link_args) that build and link an OpenMP program, or None."""
        if _flag("ONEXONE_DISABLE_OPENMP"):
            return None
        flags = (["/openmp"], []) if self._is_msvc() else (["-fopenmp"], ["-fopenmp"])
        tmp = tempfile.mkdtemp(prefix="onexone-omp-")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(OPENMP_PROBE)
            objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=flags[0])
            self.compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags[1])
            return flags
        except Exception:  # any compiler or linker failure means: no OpenMP
            return None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def build_extensions(self):
        msvc = self._is_msvc()
        # an undeclared function is an error: its pointer result would be cut to an int
        base = ["/O2"] if msvc else ["-O3", "-std=gnu11", "-fno-strict-aliasing",
                                     "-Werror=implicit-function-declaration"]
        base += os.environ.get("ONEXONE_CFLAGS", "").split()
        link = []
        if _flag("ONEXONE_SANITIZE") and not msvc:
            # -fno-wrapv: Python's CFLAGS have -fwrapv, which hides signed overflow from UBSan
            # (and makes it compile the kernels 7x slower)
            san = ["-fsanitize=address,undefined", "-fno-wrapv", "-fno-omit-frame-pointer", "-g", "-O1"]
            base = [f for f in base if not f.startswith("-O")] + san
            link += ["-fsanitize=address,undefined"]

        omp = self._probe_openmp()
        if omp is None:
            print(
                "WARNING: onexone: no OpenMP support found for this compiler; building "
                "single-threaded (onexone.show_config() will say so).",
                file=sys.stderr,
            )

        for ext in self.extensions:
            ext.extra_compile_args = list(base) + (omp[0] if omp else [])
            ext.extra_link_args = list(link) + (omp[1] if omp else [])
            if X86:
                ext.define_macros.append(("OXO_HAVE_X86_KERNELS", "1"))
                for src, unix_flags, msvc_flags in ISA_SOURCES:
                    objs = self.compiler.compile(
                        [src],
                        output_dir=self.build_temp,
                        include_dirs=ext.include_dirs,
                        extra_postargs=ext.extra_compile_args + (msvc_flags if msvc else unix_flags),
                        debug=self.debug,
                    )
                    ext.extra_objects = list(ext.extra_objects or []) + objs
        super().build_extensions()


extensions = [
    Extension(
        "onexone._core",
        sources=["src/onexone/_core.pyx"] + COMMON_SOURCES,
        # an edited header or ISA kernel file rebuilds the module (setuptools otherwise
        # relinks only when a listed source is newer, and never recompiles for a header)
        depends=sorted(glob.glob("csrc/**/*.h", recursive=True)) + [src for src, _, _ in ISA_SOURCES],
        include_dirs=["csrc", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
