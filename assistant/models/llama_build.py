"""Building llama.cpp at install (`make install` runs `python -m assistant.models.llama_build`).

llama-cpp-python is on PyPI as a source archive only: its wheel compiles llama.cpp for the CPU it is built on
(`-march=native`). So the built wheel is cached per CPU (key: version, machine, instruction-set flags, compiler,
build options): a second install on the same machine takes seconds, and a cache carried to another CPU is never
reused there (a native build would die of an illegal instruction). A failed build does not fail the install: GGUF
models then run in transformers at fp32 and `assistant doctor` says why.

Also kept from the source archive, once per version: llama.cpp's own conversion scripts (LoRA and Hugging Face →
GGUF), which the wheel leaves out. On x86 CPUs with AVX-512, an AVX2-only build of the libraries can be made from
it (no network: plain CMake), the first time `ASSISTANT_LOCAL_CPU=avx2` asks for it, so the path most laptops run
can be forced and measured here.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import platformdirs

VERSION = "0.3.36"
REQUIREMENT = f"llama-cpp-python=={VERSION}"
# mtmd (image input) is not used here and is the slowest part of the build.
CMAKE_ARGS = "-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
AVX2_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
# The instruction sets a native build may use: a change in any of them makes another build.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512vbmi", "amx_tile", "amx_int8", "asimd", "asimddp", "sve", "i8mm")
# llama.cpp's AMX kernels (Intel Xeon since Sapphire Rapids) crash in ggml_backend_amx_mul_mat on the weights they
# take over (Q8_0, Q4_0, K-quants), with or without a LoRA adapter: seen here on a 2-core AMX Xeon, and upstream
# (llama.cpp #20824, open; dspy dropped ollama's AMX variant for it). A native build on such a CPU leaves them out
# (gcc/clang: an explicit -mno-* wins over -march=native); its AVX-512 kernels do that work (docs/BENCHMARKS.md).
NO_AMX_ARGS = "-DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8"
SCRIPTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/")


def cache_root() -> Path:
    return Path(os.environ.get("RAGTUNE_BUILD_CACHE") or platformdirs.user_cache_dir("ragtune")) / "llama-cpp"


def scripts_dir() -> Path:
    """llama.cpp's conversion scripts, as extracted from the source archive at install."""
    return cache_root() / VERSION / "llama.cpp"


def avx2_lib_dir() -> Path:
    return cache_root() / VERSION / f"avx2-{_key(AVX2_ARGS, isa=False)}"


def wants_avx2_variant() -> bool:
    from assistant.cpu import cpu_flags

    return platform.machine() in {"x86_64", "AMD64"} and "avx512f" in cpu_flags()


def native_args() -> str:
    """What a native build adds to CMAKE_ARGS on this CPU."""
    from assistant.cpu import cpu_flags

    return NO_AMX_ARGS if "amx_int8" in cpu_flags() else ""


def _key(extra_args: str, isa: bool = True) -> str:
    from assistant.cpu import cpu_flags

    flags = sorted(set(ISA_FLAGS) & cpu_flags()) if isa else []
    identity = [VERSION, platform.machine(), *flags, _compiler(), CMAKE_ARGS, extra_args,
                os.environ.get("CMAKE_ARGS", "")]
    return hashlib.sha256("|".join(identity).encode()).hexdigest()[:12]


def _compiler() -> str:
    try:
        return subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        return "no c++ compiler"


def _run(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if done.returncode:
        raise RuntimeError(f"`{' '.join(command[:4])} …` failed (exit {done.returncode}); see {log}")


def _sdist(log: Path) -> Path:
    folder = cache_root() / "sdist"
    found = sorted(folder.glob(f"llama_cpp_python-{VERSION}.tar.gz"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", REQUIREMENT,
          "-d", str(folder)], log)
    return next(folder.glob(f"llama_cpp_python-{VERSION}.tar.gz"))


def _native_wheel(sdist: Path, log: Path) -> Path:
    folder = cache_root() / VERSION / f"native-{_key(native_args())}"
    wheels = sorted(folder.glob("*.whl"))
    if wheels:
        return wheels[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".native-", dir=folder.parent))
    try:
        env = {"CMAKE_ARGS": f"{CMAKE_ARGS} {native_args()} {os.environ.get('CMAKE_ARGS', '')}".strip(),
               "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", str(sdist), "-w", str(staging)],
             log, env)
        os.replace(staging, folder)  # atomic: the cache holds a whole wheel or nothing
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return next(folder.glob("*.whl"))


def _extract_scripts(sdist: Path) -> None:
    target = scripts_dir()
    if (target / "convert_lora_to_gguf.py").is_file():
        return
    prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
    staging = Path(tempfile.mkdtemp(prefix=".scripts-", dir=target.parent))
    try:
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.startswith(prefix)
                       and m.name[len(prefix):].startswith(SCRIPTS)]
            for member in members:
                member.name = member.name[len(prefix):]
                archive.extract(member, staging, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_avx2_libs() -> Path:
    """llama.cpp's shared libraries built for AVX2 only (plain CMake on the kept source archive; a few minutes)."""
    from filelock import FileLock

    target = avx2_lib_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=3600):
        if not (target / "libllama.so").is_file():
            _avx2_libs(_sdist(cache_root() / "build.log"), cache_root() / "build.log", target)
    return target


def _avx2_libs(sdist: Path, log: Path, target: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix=".avx2-build-", dir=target.parent))
    try:
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        source = work / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
        build = work / "build"
        _run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON",
              "-DLLAMA_CURL=OFF", "-DCMAKE_INSTALL_RPATH=$ORIGIN", "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
              *CMAKE_ARGS.split(), *AVX2_ARGS.split()], log)
        _run(["cmake", "--build", str(build), "--target", "llama", "-j", str(os.cpu_count() or 2)], log)
        libs = work / "lib"
        libs.mkdir()
        for library in build.rglob("lib*.so*"):
            shutil.copy2(library, libs / library.name, follow_symlinks=True)
        os.replace(libs, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv == ["--avx2"]:  # `make test`: the forced-AVX2 test needs it (built once per machine, then cached)
        if wants_avx2_variant():
            print(f"llama.cpp AVX2-only build: {build_avx2_libs()}")
        return 0
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "build.log"
    try:
        sdist = _sdist(log)
        (root / VERSION).mkdir(exist_ok=True)
        _extract_scripts(sdist)
        wheel = _native_wheel(sdist, log)
        _run([sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", str(wheel)], log)
    except (RuntimeError, OSError, StopIteration, tarfile.TarError) as exc:
        print(f"warning: llama.cpp could not be built ({exc}). GGUF models will run in transformers at fp32; "
              "`assistant doctor` says so. Needs cmake and a C++ compiler.", file=sys.stderr)
        return 0  # the install goes on without the fast path
    print(f"llama.cpp {VERSION} ready (cached under {root})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
