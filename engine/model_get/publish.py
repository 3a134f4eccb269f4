"""`riffstudio model publish`: a bundle onto the Hugging Face Hub as it is, with its model card (for maintainers).

The bundle is checked first, with nothing sent: its manifest read, every file it lists hashed against it
(engine.bundle's own verification), and a token found. Then the repository is made (kept if it exists) and
one commit adds exactly the manifest's files, manifest.json and a README.md model card written from the
manifest: riffusion's licence (CreativeML OpenRAIL-M) with its use restrictions, which travel with the
weights, the credits, and how the bundle was made. Anything else in the bundle folder (the NPU's `cache/`)
stays home. `riffstudio model get ORG/NAME` takes such a repository as it is (engine/model_get/published.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.bundle.bundle import Bundle
from engine.bundle.manifest import MANIFEST_NAME, Manifest
from engine.errors import CancelledError, InvalidInputError, ModelBundleError, reason
from engine.model_get.download import DEFAULT_REPO, is_hub_id, is_transport_error
from engine.version import __version__

CARD_NAME = "README.md"
LICENSE_ID = "creativeml-openrail-m"
LICENSE_URL = "https://huggingface.co/spaces/CompVis/stable-diffusion-license"
LOGIN = "log in with `hf auth login` (a token with write access)"
# CreativeML OpenRAIL-M, Attachment A, word for word: every derivative must carry these.
USE_RESTRICTIONS = (
    "In any way that violates any applicable national, federal, state, local or international law or regulation;",
    "For the purpose of exploiting, harming or attempting to exploit or harm minors in any way;",
    "To generate or disseminate verifiably false information and/or content with the purpose of harming others;",
    "To generate or disseminate personal identifiable information that can be used to harm an individual;",
    "To defame, disparage or otherwise harass others;",
    "For fully automated decision making that adversely impacts an individual's legal rights or otherwise creates "
    "or modifies a binding, enforceable obligation;",
    "For any use intended to or which has the effect of discriminating against or harming individuals or groups "
    "based on online or offline social behavior or known or predicted personal or personality characteristics;",
    "To exploit any of the vulnerabilities of a specific group of persons based on their age, social, physical or "
    "mental characteristics, in order to materially distort the behavior of a person pertaining to that group in a "
    "manner that causes or is likely to cause that person or another person physical or psychological harm;",
    "For any use intended to or which has the effect of discriminating against individuals or groups based on "
    "legally protected characteristics or categories;",
    "To provide medical advice and medical results interpretation;",
    "To generate or disseminate information for the purpose to be used for administration of justice, law "
    "enforcement, immigration or asylum processes, such as predicting an individual will commit fraud/crime "
    "commitment (e.g. by text profiling, drawing causal relationships between assertions made in documents, "
    "indiscriminate and arbitrarily-targeted use).",
)
PRECISION_WORDS = {"fp32": "fp32, the reference (ONNX Runtime on any CPU)",
                   "int8": "int8, quantised for the CPU (ONNX Runtime)",
                   "qnn": "qnn, static w8a16 QDQ for the Snapdragon NPU (ONNX Runtime's QNN execution provider)"}

Progress = Callable[[str, float], None]


def publish_bundle(bundle: Path, repo_id: str, *, private: bool = False, token: str | None = None,
                   progress: Progress | None = None) -> str:
    """Upload `bundle` to the Hub model repository `repo_id` (made if missing) in one commit with its model card;
    returns the commit's URL. Everything is checked before the first request: the id, the bundle (every file's
    sha256 against its manifest) and that there is a token."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    bundle = Path(bundle)
    if not is_hub_id(repo_id):
        raise InvalidInputError(f"{repo_id} is not a Hugging Face repository id: give ORG/NAME")
    checked = Bundle(bundle, _manifest(bundle))
    token = token or get_token()
    if not token:
        raise InvalidInputError(f"publishing to Hugging Face needs a token: {LOGIN}, or set HF_TOKEN")
    try:
        checked.verify(hashes=True, progress=(lambda stage, done: progress(stage, 0.5 * done)) if progress else None)
    except ModelBundleError as error:
        raise ModelBundleError(f"{bundle} is not published: {error}") from None
    manifest = checked.manifest
    operations = [CommitOperationAdd(path_in_repo=entry.path, path_or_fileobj=str(bundle / entry.path))
                  for entry in manifest.files]
    operations += [CommitOperationAdd(path_in_repo=MANIFEST_NAME, path_or_fileobj=str(bundle / MANIFEST_NAME)),
                   CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=model_card(manifest, repo_id).encode())]
    if progress:
        progress(f"uploading {len(operations)} files to {repo_id}", 0.5)
    with publish_errors(repo_id):
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
        commit = api.create_commit(
            repo_id, operations, repo_type="model",
            commit_message=f"riffstudio {__version__}: the {manifest.precision} bundle of "
                           f"{manifest.source if is_hub_id(manifest.source) else Path(manifest.source).name}",
            commit_description=f"Made by riffstudio {manifest.riffstudio_version} on {manifest.created} from "
                               f"{manifest.source} at {manifest.source_revision}; published by riffstudio "
                               f"{__version__}, every file checked against its manifest first.")
    if progress:
        progress("published", 1.0)
    return str(commit.commit_url)


def _manifest(bundle: Path) -> Manifest:
    try:
        return Manifest.read(bundle)
    except ModelBundleError as error:
        raise ModelBundleError(f"{bundle} cannot be published: {error}") from None


def model_card(manifest: Manifest, repo_id: str = "ORG/NAME") -> str:
    """The Hub model card (README.md) of the bundle `manifest` describes, published as `repo_id`: the metadata
    header, what it is and how to get it, the licence and its use restrictions, the credits, and how it was made."""
    base = manifest.source if is_hub_id(manifest.source) else DEFAULT_REPO
    header = ["---", f"license: {LICENSE_ID}", "library_name: onnx", f"base_model: {json.dumps(base)}"]
    if manifest.precision != "fp32":
        header.append("base_model_relation: quantized")
    header += ["pipeline_tag: text-to-audio", "tags:"]
    header += [f"- {tag}" for tag in ("riffusion", "riffstudio", "onnx", "onnxruntime", manifest.precision,
                                      "stable-diffusion", "spectrogram", "music", "text-to-audio")]
    header.append("---")
    restrictions = [f"- {line}" for line in USE_RESTRICTIONS]
    made = _how_it_was_made(manifest)
    modified = "converted to ONNX" if manifest.precision == "fp32" else "converted to ONNX and quantised"
    return "\n".join([
        *header, "",
        f"# Riffusion as a riffstudio {manifest.precision} bundle", "",
        "[Riffusion](https://huggingface.co/riffusion/riffusion-model-v1) (Stable Diffusion v1.5 fine-tuned on "
        "mel-spectrogram images of music) converted to ONNX for riffstudio, a local loop generator that runs it "
        f"with ONNX Runtime. Precision: {PRECISION_WORDS.get(manifest.precision, manifest.precision)}.", "",
        "Get it with riffstudio, which takes it as it is (no conversion) and checks every file against the sha256 "
        "in `manifest.json`; `riffstudio model check BUNDLE` then runs each model once on your machine (and scores "
        "quantised ones against the reference outputs stored when they were made):", "",
        "```", f"riffstudio model get {repo_id}", "```", "",
        "## Licence: CreativeML OpenRAIL-M", "",
        "These weights are a derivative of riffusion-model-v1, itself a derivative of Stable Diffusion v1.5, and are "
        f"released under the same licence, the CreativeML OpenRAIL-M (full text: {LICENSE_URL}). Copyright (c) 2022 "
        "Robin Rombach and Patrick Esser and contributors. The licence's use-based restrictions (its Attachment A, "
        "below) apply to you, to every use of these weights and of what they generate, and to any derivative: "
        "whoever passes the weights (or a model made from them) on must include these restrictions as enforceable "
        "terms and give the recipient a copy of the licence. You are accountable for the outputs you generate and "
        "their use, which must not go against the licence. The files here are modified from the originals: "
        f"{modified}, as described below.", "",
        "### Use restrictions (CreativeML OpenRAIL-M, Attachment A)", "",
        "You agree not to use the Model or Derivatives of the Model:", "",
        *restrictions, "",
        "## Credits", "",
        "- Riffusion, the model: Seth Forsgren and Hayk Martiros "
        "([riffusion/riffusion-model-v1](https://huggingface.co/riffusion/riffusion-model-v1)).",
        "- Stable Diffusion v1.5, the model riffusion was fine-tuned from: Stability AI, CompVis (LMU Munich) and "
        "RunwayML.",
        "- ONNX Runtime, which runs it: Microsoft and contributors.", "",
        "## How this bundle was made", "",
        *made, ""])


def _how_it_was_made(manifest: Manifest) -> list[str]:
    runtime = manifest.runtime
    cpu = runtime.get("converted_on_cpu") or runtime.get("converted_on") or "not recorded"
    lines = ["| | |", "|---|---|",
             f"| source | `{manifest.source}` |",
             f"| source revision | `{manifest.source_revision}` |",
             f"| precision | {manifest.precision} |",
             f"| made | {manifest.created} by riffstudio {manifest.riffstudio_version} |",
             f"| ONNX Runtime | {manifest.onnxruntime_version} (opset {manifest.opset}) |",
             f"| converted on | {_cell(str(cpu))} |",
             f"| image | {manifest.image_height} px high, {manifest.min_image_width}-{manifest.max_image_width} px "
             f"wide{' (fixed shapes)' if manifest.fixed_shapes else ''} |",
             "", "| model | file | quantisation | checks where it was made |", "|---|---|---|---|"]
    for name, spec in manifest.components.items():
        checks = ", ".join(f"{_label(key)} {value:.3g}" + (" dB" if key.endswith("_db") or "_db_" in key else "")
                           if isinstance(value, int | float) else f"{_label(key)}: {value}"
                           for key, value in spec.validation.items())
        lines.append(f"| {name} | `{spec.file}` | {spec.quantization} | {_cell(checks) or '-'} |")
    lines += ["", "Every file with its size and sha256 is in `manifest.json` (riffstudio checks them all on get):", ""]
    lines += [f"- `{entry.path}`: {entry.size:,} bytes, sha256 `{entry.sha256}`" for entry in manifest.files]
    return lines


def _label(key: str) -> str:
    """A manifest's validation key in words: snr_db_vs_fp32 -> "SNR vs fp32"."""
    return key.replace("_db", "").replace("snr", "SNR").replace("_", " ")


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


@contextlib.contextmanager
def publish_errors(repo_id: str) -> Iterator[None]:
    """The Hub's refusals of a write as one line each: the token refused or read-only, offline, no connection.
    (download.hub_errors speaks of downloading; a write fails in its own ways.)"""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    try:
        yield
    except (CancelledError, InvalidInputError, ModelBundleError):
        raise
    except Exception as error:
        cause = error  # an LFS upload's failure comes wrapped in a RuntimeError
        while isinstance(cause, RuntimeError) and not isinstance(cause, HfHubHTTPError) and cause.__cause__:
            cause = cause.__cause__
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if isinstance(cause, OfflineModeIsEnabled):
            raise ModelBundleError(f"cannot publish {repo_id}: HF_HUB_OFFLINE is set; unset it") from None
        if status == 401:
            raise ModelBundleError(f"Hugging Face did not accept the token for {repo_id} (401): {LOGIN}") from None
        if status == 403:
            raise ModelBundleError(f"the token may not write to {repo_id} (403): log in with `hf auth login` with a "
                                   f"token that has write access to {repo_id.split('/')[0]}") from None
        if isinstance(cause, RepositoryNotFoundError):
            raise ModelBundleError(f"{repo_id} cannot be written (not found, or the token has no access): check the "
                                   f"id, or {LOGIN}") from None
        if isinstance(cause, HfHubHTTPError):
            raise ModelBundleError(f"Hugging Face refused the upload to {repo_id} ({reason(cause, 120)}): try again "
                                   "later") from None
        if is_transport_error(cause):
            raise ModelBundleError(f"cannot publish {repo_id}: no connection to Hugging Face ({reason(cause, 80)}); "
                                   "try again when online") from None
        raise
