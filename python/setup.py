"""pip install --no-build-isolation ./python: the host-side `terrarium`
package, with its native core from a Terrarium CMake build tree.

The native core links libterrarium (the translated guest included), which only
the CMake build makes. This script builds the `terrarium_python` target in
TERRARIUM_BUILD_DIR (default: ../build beside this directory; configured with
Ninja if it has never been), then packages the pure-Python layer, its stubs
and the extension. No network and no build isolation are needed: Debian's
setuptools does the rest.
"""
import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("TERRARIUM_SOURCE_DIR", os.path.dirname(HERE))
BUILD = os.path.abspath(os.environ.get("TERRARIUM_BUILD_DIR", os.path.join(SOURCE, "build")))


class BuildWithCMake(build_ext):
    """Builds the extension with the project's CMake build and copies it in."""

    def run(self):
        if not os.path.exists(os.path.join(SOURCE, "CMakeLists.txt")):
            sys.exit("terrarium: no Terrarium source tree at %s (set TERRARIUM_SOURCE_DIR)" % SOURCE)
        if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
            print("terrarium: configuring %s (the first build takes 20 minutes or more)" % BUILD)
            subprocess.check_call(["cmake", "-S", SOURCE, "-B", BUILD, "-G", "Ninja"])
        print("terrarium: building the native core in %s" % BUILD)
        subprocess.check_call(["cmake", "--build", BUILD, "--target", "terrarium_python"])
        built = glob.glob(os.path.join(BUILD, "python", "terrarium", "_native*.so"))
        if len(built) != 1:
            sys.exit("terrarium: expected one _native*.so in %s, found %r"
                     % (os.path.join(BUILD, "python", "terrarium"), built))
        for extension in self.extensions:
            target = self.get_ext_fullpath(extension.name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(built[0], target)


setup(
    name="terrarium",
    version="0.1.0",
    description="Run untrusted Python in a WebAssembly sandbox from a Python host program",
    python_requires=">=3.11",
    packages=["terrarium"],
    package_data={"terrarium": ["py.typed", "*.pyi"]},
    ext_modules=[Extension("terrarium._native", sources=[])],
    cmdclass={"build_ext": BuildWithCMake},
    zip_safe=False,
)
