"""Where a checkpoint's templates come from: shipped for SD 1.5, else built once and kept in the user cache.

SD 1.5 (riffusion's architecture) ships as package data in the two variants the product uses: `dynamic`
(CPU bundles, any width) and `fixed512` (qnn bundles, 512 px). Any other architecture, or another qnn
width, is exported once with the export extra (torch) by engine/export/templates.py and kept in the user
cache under its signature; after that no torch is needed for it either. Without the extra, one line says
what to install.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from engine.errors import ModelBundleError
from engine.model_get.architecture import Architecture
from engine.model_get.template import TEMPLATES_NAME, TemplateSet

SHIPPED = Path(__file__).with_name("templates")
# Tests point this at a shared folder so the templates of the tiny test model are built once per checkout.
CACHE_ENV = "RIFFSTUDIO_TEMPLATE_CACHE"
INSTALL_EXPORT = "pip install -c constraints.txt -e '.[export]' (from the source folder)"


def variant_for(precision: str, qnn_width: int) -> str:
    """The graph shapes a precision needs: fixed at one width for the NPU, dynamic for the CPU."""
    return f"fixed{qnn_width}" if precision == "qnn" else "dynamic"


def cache_folder() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get(CACHE_ENV) or Path(user_cache_dir("riffstudio", appauthor=False)) / "templates")


def find_templates(architecture: Architecture, variant: str) -> TemplateSet | None:
    """The templates of `architecture` in `variant`, shipped or cached; None where there are none yet."""
    for folder in (SHIPPED / f"sd15-{variant}", cache_folder() / f"{architecture.signature}-{variant}"):
        if (folder / TEMPLATES_NAME).is_file():
            templates = TemplateSet.read(folder)
            if templates.signature == architecture.signature and templates.variant == variant:
                return templates
    return None


def templates_for(architecture: Architecture, raw_configs: dict, variant: str,
                  say: Callable[[str], None] = print) -> TemplateSet:
    """`find_templates`, or build them now with the export extra (minutes, once per architecture)."""
    templates = find_templates(architecture, variant)
    if templates is not None:
        return templates
    if export_extra_missing() is not None:
        raise ModelBundleError(f"this model's architecture ({_describe(architecture)}) is not SD 1.5's, so riffstudio "
                               "has no ready-made graph for it: install the export extra once "
                               f"({INSTALL_EXPORT}) and run model get again, which builds it")
    folder = cache_folder() / f"{architecture.signature}-{variant}"
    say(f"building the {variant} model graphs for this architecture ({_describe(architecture)}) once, with torch; "
        f"kept in {folder}")
    from engine.export.templates import build_templates

    return build_templates(raw_configs, variant, folder)


def export_extra_missing() -> str | None:
    """The first package of the export extra that cannot be imported here (None: all can). Imported for real:
    a package that is present but broken is as missing as an absent one."""
    import importlib

    for name in ("engine.export.templates", "torch", "diffusers", "transformers", "onnxscript"):
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def _describe(architecture: Architecture) -> str:
    unet = architecture.configs["unet"]
    return (f"UNet channels {unet.get('block_out_channels')}, text width "
            f"{architecture.configs['text_encoder'].get('hidden_size')}")
