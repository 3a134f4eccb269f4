"""`riffstudio --self-test`: what a support person asks a producer to run first.

Each check proves one part works on this machine, in the same process layout as the app (the frozen
app folder included): the runtime, the NPU provider, Qt, audio output, the WAV writer, the engine
process and, when a model bundle is known, one short loop. `report.py` holds the result types and
their rendering, `checks.py` the machine checks, `engine_checks.py` the engine and loop checks,
`qt_probe.py` the window opened in a child process (a Qt that cannot reach a display aborts its process).
"""
