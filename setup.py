"""The wheel carries the built sidecar (tools/sidecar_bundle.py); metadata is in pyproject.toml.

``make wheel`` builds it. An editable install (``pip install -e .``, what ``make`` does)
stages nothing: it runs the checkout's own sidecar.
"""

import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tools"))
from sidecar_bundle import PLATFORM_TAG, stage  # noqa: E402


class BuildPyWithSidecar(build_py):
    """build_py, plus the sidecar copied to ``vtpu/_sidecar`` (not for editable installs)."""

    def run(self):
        super().run()
        if not self.editable_mode:
            stage(ROOT, Path(self.build_lib) / "vtpu" / "_sidecar")


class PlatformWheel(bdist_wheel):
    """Tagged py3-none-<platform>: the sidecar's native addons are Linux x86-64 builds."""

    def get_tag(self):
        return "py3", "none", PLATFORM_TAG


class BinaryDistribution(Distribution):
    """Platform-specific (native files inside) though no Python extension is compiled."""

    def has_ext_modules(self):
        return True


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildPyWithSidecar, "bdist_wheel": PlatformWheel})
