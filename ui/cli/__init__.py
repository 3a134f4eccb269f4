"""The `riffstudio` command: one sub-command module per feature, each a thin front end."""
