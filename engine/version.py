"""The one place the version lives (pyproject reads it; frozen builds have no package metadata)."""

__version__ = "0.1.0"
