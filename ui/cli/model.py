"""`riffstudio model get|convert|check|compile|publish`: get a model bundle (no torch), make one from a checkpoint
with torch, prove it runs here, compile it for a Snapdragon NPU, publish it on the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.choices import GET_PRECISIONS, PRECISIONS

PRECISION_HELP = ("fp32: reference; int8: quantised for the CPU; qnn: static w8a16 QDQ for the "
                  "Snapdragon NPU (QNN execution provider)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="convert a checkpoint to a model bundle, check a bundle",
                                   description="Model bundles: what the engine runs.")
    commands = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    get = commands.add_parser(
        "get", help="download riffusion (or another model) and make a bundle of it: no torch needed",
        description="Get SOURCE (default: riffusion/riffusion-model-v1 from the Hugging Face Hub; any Hub repo "
        "or local folder in the diffusers layout) as a model bundle. The download resumes where it stopped "
        "and every file is checked; the bundle goes into the models folder unless --out says otherwise.")
    get.add_argument("source", metavar="SOURCE", nargs="?", default=None,
                     help="a Hugging Face id (default: riffusion/riffusion-model-v1), a diffusers folder, or a single "
                     ".ckpt/.safetensors checkpoint (riffusion-model-v1.ckpt's layout)")
    get.add_argument("--precision", choices=GET_PRECISIONS, default="auto",
                     help="auto (default): qnn where the Snapdragon NPU provider is present, else int8; "
                     + PRECISION_HELP)
    get.add_argument("--out", type=Path, metavar="BUNDLE",
                     help="bundle folder to write (default: MODELS/<name>-<precision> in the models folder)")
    get.add_argument("--revision", default="main", help="a Hub branch, tag or commit (default: main)")
    get.add_argument("--width", type=int, default=512, metavar="PX",
                     help="qnn only: the one image width the NPU bundle generates (default 512 px, 5.12 s)")
    get.add_argument("--config", type=Path, metavar="DIR",
                     help="single .ckpt/.safetensors files only: a diffusers folder with the checkpoint's configs "
                     "and tokenizer (default: Stable Diffusion 1.5's, which riffusion's is)")
    get.add_argument("--calibration-images", type=int, default=8, metavar="N",
                     help="int8/qnn: how many of the eight shipped spectrograms calibrate the quantised models "
                     "(fewer is faster; default 8)")
    get.add_argument("--keep-download", action="store_true",
                     help="keep the downloaded files in the cache (default: removed once the bundle is made)")
    get.add_argument("--plan", action="store_true",
                     help="only say what the get would download and need (bytes, disk, build time), then stop")
    get.add_argument("--discard", action="store_true",
                     help="remove what earlier gets of SOURCE downloaded (kept to resume them), then stop")
    get.add_argument("--json", action="store_true",
                     help="progress and the result as JSON lines on stdout (what the desktop app reads)")
    get.set_defaults(run=run_get)

    convert = commands.add_parser(
        "convert", help="convert a Stable Diffusion checkpoint to a model bundle (needs the export extra)",
        description="Convert SRC (a diffusers folder, a .ckpt/.safetensors file, or a Hugging Face id such "
        "as riffusion/riffusion-model-v1) into a model bundle folder.")
    convert.add_argument("source", metavar="SRC")
    convert.add_argument("--out", required=True, type=Path, metavar="BUNDLE", help="bundle folder to write")
    convert.add_argument("--precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP)
    convert.add_argument("--calibration-prompts", type=Path, metavar="FILE",
                         help="qnn only: a text file with one prompt per line to calibrate on "
                         "(default: a built-in list of varied music prompts)")
    convert.add_argument("--export-cache", type=Path, metavar="DIR",
                         help="keep ONNX exports here and reuse them when the same checkpoint is converted "
                         "again, e.g. to another precision (saves minutes on a full-size model)")
    convert.add_argument("--config", type=Path, metavar="DIR",
                         help="single .ckpt/.safetensors files only: a diffusers folder with the checkpoint's "
                         "configs and tokenizer (default: Stable Diffusion 1.5's, which riffusion's is)")
    convert.set_defaults(run=run_convert)

    check = commands.add_parser("check", help="verify a bundle's files and run each model once",
                                description="Verify every hash and shape, open every session on the "
                                "provider, run one small forward pass each, print a report.")
    check.add_argument("bundle", type=Path, metavar="BUNDLE")
    check.add_argument("--precision", choices=PRECISIONS,
                       help="fail unless the bundle was made for this precision")
    check.add_argument("--provider", choices=("cpu", "qnn"), default=None,
                       help="execution provider to check on (default: qnn for qnn bundles, else cpu)")
    check.add_argument("--models", metavar="A,B", default=None,
                       help="run only these models (e.g. unet,vae_decoder: the quantised ones, whose numbers "
                       "depend on the CPU); every file is still verified")
    check.set_defaults(run=run_check)

    compile_ = commands.add_parser(
        "compile", help="compile a qnn bundle for a Snapdragon device with Qualcomm AI Hub (needs the hub extra)",
        description="Upload each model of a qnn bundle to Qualcomm AI Hub, compile it for DEVICE "
        "(precompiled QNN ONNX), and write the compiled models into the bundle. Needs an AI Hub API token "
        "(`qai-hub configure --api_token TOKEN`).")
    compile_.add_argument("bundle", type=Path, metavar="BUNDLE")
    compile_.add_argument("--device", required=True, metavar="NAME",
                          help='an AI Hub device name, e.g. "Snapdragon X Elite CRD"')
    compile_.add_argument("--profile", action="store_true",
                          help="also profile each compiled model on the device and print its latency beside "
                          "Qualcomm's published figures")
    compile_.set_defaults(run=run_compile)

    publish = commands.add_parser(
        "publish", help="upload a bundle to a Hugging Face model repo with its model card (for maintainers)",
        description="Check every file of BUNDLE against its manifest, then upload it to the Hugging Face model "
        "repository ORG/NAME (made if missing) in one commit, with a model card: riffusion's licence "
        "(CreativeML OpenRAIL-M) and its use restrictions, the credits, how the bundle was made. `riffstudio model "
        "get ORG/NAME` then takes it as it is. Needs a token with write access (`hf auth login`, or HF_TOKEN).")
    publish.add_argument("bundle", type=Path, metavar="BUNDLE")
    publish.add_argument("--repo", required=True, metavar="ORG/NAME", help="the Hugging Face model repository")
    publish.add_argument("--private", action="store_true", help="make the repository private (when it is made)")
    publish.set_defaults(run=run_publish)


def run_get(args: argparse.Namespace) -> int:
    from engine.atomic import write_errors
    from engine.model_get.download import DEFAULT_REPO
    from engine.model_get.get import GetSettings, get_model
    from engine.model_get.installed import models_folder
    from ui.cli.progress import JsonProgress, TerminalProgress

    settings = GetSettings(source=args.source or DEFAULT_REPO, precision=args.precision, out=args.out,
                           revision=args.revision, keep_download=args.keep_download, qnn_width=args.width,
                           config=args.config, calibration_images=args.calibration_images)
    if args.plan or args.discard:
        return _get_plan_or_discard(args, settings)
    progress = JsonProgress() if args.json else TerminalProgress()
    say = progress.note if args.json else print
    try:
        with write_errors(args.out or models_folder()):
            bundle = get_model(settings, progress=progress.detailed, say=say)
    finally:
        progress.close()
    if args.json:
        progress.result({"bundle": str(bundle)})
    else:
        print(f"wrote {bundle}; the app uses the newest bundle of the models folder. Make a loop with: "
              f'riffstudio generate "funky slap bass, 100 bpm" --model {bundle} --out loop.wav')
    return 0


def _get_plan_or_discard(args: argparse.Namespace, settings) -> int:
    import json

    from engine.model_get.get import discard_download, plan_get

    if args.discard:
        removed = discard_download(settings.source)
        result = {"event": "discarded", "folders": [str(p) for p in removed]}
        text = f"removed {len(removed)} download(s) of {settings.source}" if removed else "nothing to remove"
    else:
        plan = plan_get(settings)
        result, text = {"event": "plan", **plan.to_dict()}, plan.describe()
    print(json.dumps(result) if args.json else text)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from engine.atomic import write_errors
    from engine.errors import InvalidInputError
    from engine.model_get.template_store import INSTALL_EXPORT, export_extra_missing

    try:
        from engine.export.convert import ConvertSettings, convert
    except ImportError as error:  # the app folder ships no conversion code (no torch)
        raise InvalidInputError(f"model conversion is not part of this install ({error.name} is missing): get a "
                                "model with `riffstudio model get` instead") from None
    missing = export_extra_missing()
    if missing is not None:
        raise InvalidInputError(f"model convert needs the export extra ({missing} is missing): {INSTALL_EXPORT}; or "
                                "get the model without torch: riffstudio model get")
    from ui.cli.progress import TerminalProgress

    settings = ConvertSettings(source=args.source, out=args.out, precision=args.precision,
                               calibration_prompts=args.calibration_prompts, export_cache=args.export_cache,
                               config=args.config)
    settings.validate()
    progress = TerminalProgress()
    try:
        with write_errors(args.out):  # settings.validate() proved it writable; a full disk still fails here
            manifest = convert(settings, progress=progress)
    finally:
        progress.close()
    print(f"wrote {args.out} ({manifest.precision}, {len(manifest.files)} files); "
          f"check it with: riffstudio model check {args.out}")
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from engine.model_get.publish import publish_bundle
    from ui.cli.progress import TerminalProgress

    progress = TerminalProgress()
    try:
        url = publish_bundle(args.bundle, args.repo, private=args.private, progress=progress)
    finally:
        progress.close()
    print(f"published {args.bundle} to {args.repo}: {url}; get it with: riffstudio model get {args.repo}")
    return 0


def run_compile(args: argparse.Namespace) -> int:
    from engine.hub.compile import compile_bundle

    result = compile_bundle(args.bundle, args.device, profile=args.profile,
                            report=lambda line: print(line, flush=True))
    print(result.render())
    return 0


def run_check(args: argparse.Namespace) -> int:
    from engine.bundle import open_bundle
    from engine.bundle.check import check_bundle
    from ui.cli.progress import TerminalProgress

    provider = args.provider or ("qnn" if open_bundle(args.bundle).precision == "qnn" else "cpu")
    progress = TerminalProgress()
    try:
        models = None if args.models is None else tuple(m.strip() for m in args.models.split(",") if m.strip())
        report = check_bundle(args.bundle, precision=args.precision, provider=provider, models=models,
                              progress=progress)
    finally:
        progress.close()
    print(report.render())
    return 0
