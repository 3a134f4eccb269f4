"""Where qai-hub keeps its API token, and the one line that says how to set it when it is missing.

qai-hub reads `$QAIHUB_CLIENT_INI`, else `~/.qai_hub/client.ini` (what `qai-hub configure --api_token`
writes). Checked before anything is uploaded, so a missing token costs a second, not an upload.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import HubError

CLIENT_INI_ENV = "QAIHUB_CLIENT_INI"
DEFAULT_CLIENT_INI = "~/.qai_hub/client.ini"
HOW_TO_SET = ("get an API token at https://aihub.qualcomm.com (Account > Settings), then run "
              f"`qai-hub configure --api_token TOKEN` or point {CLIENT_INI_ENV} at a client.ini")


def client_ini() -> Path:
    return Path(os.path.expanduser(os.environ.get(CLIENT_INI_ENV) or DEFAULT_CLIENT_INI))


def require_token() -> Path:
    """The config file holding the token; HubError (one line) when there is none."""
    path = client_ini()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise HubError(f"no Qualcomm AI Hub API token ({path} is missing): {HOW_TO_SET}") from None
    if "api_token" not in text:
        raise HubError(f"{path} holds no api_token: {HOW_TO_SET}")
    return path
