"""The closed lists in engine/choices.py are the ones the code acts on: a choice offered is a choice that works."""

from __future__ import annotations

import subprocess
import sys

from engine import choices


def test_each_list_is_what_its_implementation_accepts():
    from engine.codec.audio_io import _WRITE_SUBTYPES
    from engine.codec.quality import Quality
    from engine.schedulers import SCHEDULER_NAMES
    from plugin.loop_file import FORMATS, SUBTYPES

    assert tuple(quality.value for quality in Quality) == choices.QUALITIES
    assert SCHEDULER_NAMES == choices.SCHEDULER_NAMES
    assert tuple(SUBTYPES) == choices.BIT_DEPTHS
    assert {suffix[1:] for suffix in FORMATS if suffix != ".aif"} == set(choices.LOOP_FILE_FORMATS)
    assert {name.lower() for name in _WRITE_SUBTYPES} == set(choices.ENGINE_AUDIO_FORMATS)


def test_the_cli_offers_the_same_lists(run_cli):
    def choices_of(*command: str, flag: str) -> str:
        result = run_cli(*command, "--help", env={"COLUMNS": "400"})
        assert result.returncode == 0, result.stderr
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(flag))
        return line.split("{", 1)[1].split("}", 1)[0]

    assert choices_of("generate", flag="--provider") == ",".join(choices.PROVIDERS)
    assert choices_of("generate", flag="--quality") == ",".join(choices.QUALITIES)
    assert choices_of("model", "get", flag="--precision") == ",".join(choices.GET_PRECISIONS)
    assert choices_of("loop", flag="--bit-depth") == ",".join(choices.BIT_DEPTHS)


def test_choices_load_nothing_but_themselves():
    code = "import sys, engine.choices; print(sorted(m for m in sys.modules if m.startswith(('engine', 'numpy'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "['engine', 'engine.choices', 'engine.version']", result.stderr
