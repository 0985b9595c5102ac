"""The llama.cpp runtime: llama.cpp's own OpenAI-compatible server (`llama-server`), built
once from the llama.cpp sources that a pinned llama-cpp-python sdist vendors.

That sdist is the only llama.cpp release on PyPI (it has no wheels), and building just the
server target from it takes about 5 minutes on two cores, less than the bindings. The build
runs at install time (`plait engine install`, which `make demo` and `make test` call); the
binary goes into this environment (`<prefix>/lib/plait/`), so every process that runs this
Python finds it whatever its PLAIT_CACHE_DIR. PLAIT_LLAMA_SERVER points at another binary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from plait.errors import MissingDependency
from workers.engines.packaged import cache_dir

LLAMA_CPP_PYTHON = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDORED = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
APT_TOOLCHAIN = "apt-get install -y cmake g++ ninja-build"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary that can be moved into place
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)

Step = Callable[[str, int, int], None]  # (stage, done, total)


def install_dir() -> Path:
    return Path(sys.prefix) / "lib" / "plait" / f"llama.cpp-{LLAMA_CPP_PYTHON}"


def server_binary() -> Path:
    """The llama-server to run: $PLAIT_LLAMA_SERVER, else the one `plait engine install` built."""
    explicit = os.environ.get("PLAIT_LLAMA_SERVER")
    if explicit:
        path = Path(explicit)
        if not os.access(path, os.X_OK):
            raise MissingDependency(f"PLAIT_LLAMA_SERVER={explicit} is not an executable file")
        return path
    path = install_dir() / "llama-server"
    if not path.is_file():
        raise MissingDependency(
            f"the llama.cpp runtime is not built: run `plait engine install` (builds llama-server {LLAMA_CPP_PYTHON} "
            f"from source into {path.parent}, ~5 min) or set PLAIT_LLAMA_SERVER to a llama-server binary"
        )
    return path


def _generator() -> str:
    """The CMake generator to build with, after checking the toolchain is there."""
    missing = [tool for tool in ("cmake",) if shutil.which(tool) is None]
    if not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler")
    if missing:
        raise MissingDependency(f"building the llama.cpp runtime needs {' and '.join(missing)}: `{APT_TOOLCHAIN}`")
    return "Ninja" if shutil.which("ninja") else "Unix Makefiles"


def install(step: Step | None = None, jobs: int | None = None, force: bool = False) -> Path:
    """Build llama-server from the pinned sdist (downloaded with pip, hash-checked) and move it
    into this environment. Returns the binary; a built one is kept unless `force`."""
    target = install_dir() / "llama-server"
    if target.is_file() and not force:
        return target
    step = step or (lambda stage, done, total: None)
    generator = _generator()
    work = cache_dir() / "build" / f"llama.cpp-{LLAMA_CPP_PYTHON}"
    work.mkdir(parents=True, exist_ok=True)
    source = _unpack(_download(work, step), work / "src", step)
    build = work / "build"
    _run(["cmake", "-S", str(source), "-B", str(build), "-G", generator, *CMAKE_FLAGS], work / "configure.log", step, "configure")
    _run(
        ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs or os.cpu_count() or 2)],
        work / "build.log",
        step,
        "compile",
    )
    built = build / "bin" / "llama-server"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".llama-server.{os.getpid()}")
    shutil.copy2(built, staging)
    staging.rename(target)
    (target.parent / "build.json").write_text(json.dumps({"llama_cpp_python": LLAMA_CPP_PYTHON, "sdist_sha256": SDIST_SHA256}))
    return target


def _download(work: Path, step: Step) -> Path:
    sdist = work / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    if sdist.is_file():
        return sdist
    step("download", 0, 1)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        requirement = Path(tmp) / "requirements.txt"
        requirement.write_text(f"llama-cpp-python=={LLAMA_CPP_PYTHON} --hash=sha256:{SDIST_SHA256}\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--require-hashes",
                   "-r", str(requirement), "-d", tmp, "--disable-pip-version-check", "-q"]  # fmt: skip
        _run(command, work / "download.log", step, "download")
        (found,) = Path(tmp).glob("llama_cpp_python-*.tar.gz")
        found.rename(sdist)
    step("download", 1, 1)
    return sdist


def _unpack(sdist: Path, into: Path, step: Step) -> Path:
    source = into / VENDORED
    if (source / "CMakeLists.txt").is_file():
        return source
    step("unpack", 0, 1)
    shutil.rmtree(into, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(VENDORED)]
        archive.extractall(into, members=members, filter="data")
    step("unpack", 1, 1)
    return source


_PROGRESS = re.compile(rb"^\[\s*(\d+)/(\d+)\]|^\[\s*(\d+)%\]")


def _run(command: list[str], log: Path, step: Step, stage: str) -> None:
    """Run a build command, its output to `log`, reporting ninja's [n/N] (or make's [p%])."""
    with log.open("wb") as out, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            match = _PROGRESS.match(line)
            if match and match.group(1):
                step(stage, int(match.group(1)), int(match.group(2)))
            elif match:
                step(stage, int(match.group(3)), 100)
    if proc.returncode:
        tail = log.read_text(errors="replace")[-1500:]
        raise MissingDependency(f"{stage} of the llama.cpp runtime failed (exit {proc.returncode}; full log {log}):\n{tail}")
