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
from sidecar_bundle import platform_tag, stage  # noqa: E402


def _staged(cmd) -> Path:
    return Path(cmd.get_finalized_command("build_py").build_lib) / "vtpu" / "_sidecar"


class BuildPyWithSidecar(build_py):
    """build_py, plus the sidecar copied to ``vtpu/_sidecar`` (not for editable installs)."""

    def run(self):
        super().run()
        if not self.editable_mode:
            stage(ROOT, _staged(self))


class PlatformWheel(bdist_wheel):
    """Tagged py3-none-manylinux_2_N_x86_64: the sidecar's natives are Linux x86-64 builds
    needing glibc 2.N (read from them once staged)."""

    def get_tag(self):
        return "py3", "none", platform_tag(_staged(self))


class BinaryDistribution(Distribution):
    """Platform-specific (native files inside) though no Python extension is compiled."""

    def has_ext_modules(self):
        return True


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildPyWithSidecar, "bdist_wheel": PlatformWheel})
