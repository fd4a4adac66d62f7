"""Timeouts in tests are hang guards, never speed checks. They are sized for the slowest supported path (GGUF models
in transformers at fp32 when llama.cpp could not be built) on a machine busy with other work: a slow machine still
passes, and a hung test still ends."""

HANG_GUARD_S = 1800  # a subprocess, job or page that runs the real models
QUICK_GUARD_S = 300  # a step with no real model: a fake backend, a loopback server, a signal
