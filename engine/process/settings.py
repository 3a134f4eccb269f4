"""How an engine runs: its limits (threads, memory ceiling, idle timeout) as one frozen dataclass, which
is also how a client that starts an engine passes them on (as `engine serve` arguments)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import InvalidInputError

DEFAULT_IDLE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class EngineSettings:
    """`intra_op_threads=0` lets ONNX Runtime pick (the physical cores); `memory_limit_mb=0` sets no
    ceiling; the engine exits after `idle_timeout_s` with no client connected and nothing to do."""

    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    intra_op_threads: int = 0
    memory_limit_mb: int = 0
    model: str | None = None  # a bundle to open at start, so the first job starts warm
    provider: str = "auto"
    # Why the previous engine stopped, from the client that restarted it (for the journal's record).
    after_crash: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.idle_timeout_s, int | float) and math.isfinite(self.idle_timeout_s)
                and self.idle_timeout_s > 0):
            raise InvalidInputError(f"the idle timeout must be a positive number of seconds, not {self.idle_timeout_s}")
        if self.intra_op_threads < 0:
            raise InvalidInputError(f"threads must be 0 (automatic) or more, not {self.intra_op_threads}")
        if self.memory_limit_mb < 0:
            raise InvalidInputError(f"the memory limit must be 0 (none) or a number of MB, not {self.memory_limit_mb}")

    def serve_args(self) -> list[str]:
        """The `engine serve` arguments that give an engine these settings."""
        args = ["--idle-timeout", repr(float(self.idle_timeout_s)), "--threads", str(self.intra_op_threads),
                "--memory-limit", str(self.memory_limit_mb), "--provider", self.provider]
        if self.model:
            args += ["--model", self.model]
        if self.after_crash:
            args += ["--after-crash", self.after_crash]
        return args
