"""The desktop app and the command line: views and thin front ends over the engine."""
