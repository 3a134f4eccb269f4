"""DAW-facing: loop rendering, WAV metadata, drag-and-drop export, batch presets."""
