"""Model bundles: a folder of ONNX models, a tokenizer and a manifest, loadable with no torch."""

from engine.bundle.bundle import Bundle, open_bundle
from engine.bundle.manifest import COMPONENTS, PRECISIONS, SCHEMA_VERSION, Manifest

__all__ = ["COMPONENTS", "PRECISIONS", "SCHEMA_VERSION", "Bundle", "Manifest", "open_bundle"]
