"""Importing llama-cpp-python with the build of llama.cpp the settings ask for.

`auto` is the build made at install for this CPU. `avx2` is the AVX2-only build (what CPUs without AVX-512 run),
made from the kept sources the first time it is asked for on a CPU that has more, so that path can be forced and
measured here. The library is chosen when
llama_cpp is first imported (its LLAMA_CPP_LIB_PATH switch), so one process runs one build.
"""

from __future__ import annotations

import functools
import os
import re
import sys

from assistant.errors import ConfigError, ModelUnavailable
from assistant.models import llama_build

_loaded: str | None = None


def load_llama_cpp(cpu: str | None = None):
    """The llama_cpp module; ModelUnavailable (with the reason) where it is not installed or the build asked for
    is missing."""
    global _loaded
    if _loaded is not None and cpu is not None and cpu != _loaded:
        raise ConfigError(f"This process already runs llama.cpp's {_loaded} build; local_cpu={cpu} needs a new "
                          "process (restart the command or the app).")
    if _loaded is None:
        chosen = cpu or "auto"
        if chosen == "avx2":
            if not llama_build.wants_avx2_variant():
                raise ConfigError("local_cpu=avx2 is for x86 CPUs with AVX-512; this CPU's own build (local_cpu=auto) "
                                  "already is its best.")
            try:
                lib = llama_build.build_avx2_libs()  # once per machine; then cached
            except (RuntimeError, OSError) as exc:
                raise ModelUnavailable(f"llama.cpp's AVX2-only build failed: {exc}") from None
            os.environ["LLAMA_CPP_LIB_PATH"] = str(lib)
        elif "llama_cpp" not in sys.modules:
            os.environ.pop("LLAMA_CPP_LIB_PATH", None)
        _import()
        _loaded = chosen
    return _import()


@functools.cache
def _import():
    try:
        import llama_cpp
    except (ImportError, OSError, RuntimeError) as exc:
        raise ModelUnavailable(
            f"llama.cpp is not available ({str(exc).splitlines()[0][:160]}). `make install` builds it (needs cmake "
            f"and a C++ compiler; its log is {llama_build.cache_root() / 'build.log'})."
        ) from None
    if llama_cpp.__version__ != llama_build.VERSION:
        raise ModelUnavailable(f"llama-cpp-python {llama_cpp.__version__} is installed; this version needs "
                               f"{llama_build.VERSION}: run `make install`.")
    refuse_crashing_build(llama_cpp)
    from llama_cpp import _logger

    _logger.set_verbose(False)  # llama.cpp's own log (loading, quantising) only on errors
    return llama_cpp


def refuse_crashing_build(llama_cpp) -> None:
    """A build with the AMX kernels (an old cache, or one made by hand) would crash the process on the first
    quantised model (llama_build.NO_AMX_ARGS): refused, so GGUF models fall back to transformers and say why."""
    if "AMX_INT8" in built_features(llama_cpp):
        raise ModelUnavailable("This llama.cpp was built with its AMX kernels, which crash on quantised models "
                               "(llama.cpp #20824): run `make install` to rebuild it without them.")


def built_features(llama_cpp) -> set[str]:
    """What llama.cpp's CPU kernels were built with, from its own report ("AVX2 = 1 | AVX512 = 1 | …")."""
    return set(re.findall(r"(\w+) = 1", llama_cpp.llama_print_system_info().decode(errors="replace")))


def unavailable_reason(cpu: str = "auto") -> str | None:
    """Why GGUF models cannot run in llama.cpp here, or None if they can."""
    try:
        load_llama_cpp(cpu)
    except (ModelUnavailable, ConfigError) as exc:
        return str(exc)
    return None
