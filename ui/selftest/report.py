"""The self-test's results: one line per check a support person can read, or one JSON object."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# ok: works; note: absent by design here (no NPU on this machine); warning: works without it (no audio
# device); fail: riffstudio cannot work as shipped.
Status = Literal["ok", "note", "warning", "fail"]
MARKS = {"ok": "ok  ", "note": "note", "warning": "warn", "fail": "FAIL"}


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SelfTestReport:
    version: str
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)

    def render(self) -> str:
        width = max(len(check.name) for check in self.checks)
        lines = [f"riffstudio {self.version} self-test"]
        lines += [f"  {MARKS[c.status]}  {c.name:<{width}}  {c.detail}  ({c.seconds:.2f} s)" for c in self.checks]
        failed = [c.name for c in self.checks if c.status == "fail"]
        lines.append(f"FAILED: {', '.join(failed)}" if failed else "PASSED: riffstudio works on this machine")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "ok": self.ok,
                           "checks": [asdict(check) for check in self.checks]}, indent=2)
