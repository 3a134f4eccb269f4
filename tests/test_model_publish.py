"""`riffstudio model publish` and published bundles in `model get`: a bundle onto the Hub as it is with its model
card, and back again with no conversion, every file checked against the manifest.

The CLI runs in fresh interpreters, against a real HTTP server answering the Hub's read and write endpoints
(tests/fake_hub.py); the bundle is the tiny model's cached fp32 bundle (tests/conftest.py). User folders and
HF_HOME are in tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fake_hub import FakeHub, FakeRepo

from engine.model_get.publish import LICENSE_URL, USE_RESTRICTIONS
from engine.version import __version__

REPO_ID = "riffstudio-tests/riffusion-fp32"


@pytest.fixture
def user_dirs(tmp_path: Path) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "HF_HOME": str(tmp_path / "hf")}


@pytest.fixture
def hub():
    with FakeHub([]) as server:
        yield server


def bundle_files(bundle: Path) -> list[str]:
    """What a bundle is: manifest.json and every file its manifest lists (not the NPU's cache/)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    return ["manifest.json", *(entry["path"] for entry in manifest["files"])]


def copy_bundle(bundle: Path, out: Path) -> Path:
    """A real copy (never links: tests alter it) of the bundle's own files."""
    for name in bundle_files(bundle):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / name, out / name)
    return out


def one_line(result) -> str:
    """The failure a producer sees: one `riffstudio:` line, the last on stderr, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout
    assert lines and lines[-1].startswith("riffstudio: "), result.stderr
    assert sum(line.startswith("riffstudio: ") for line in lines) == 1 and "Traceback" not in result.stderr
    return lines[-1]


def fetched(hub: FakeHub) -> set[str]:
    """The repo files the hub has served (GET .../resolve/...)."""
    return {r.path.split("/resolve/", 1)[1].split("/", 1)[1] for r in hub.requests
            if r.method == "GET" and "/resolve/" in r.path}


def test_a_published_bundle_comes_back_byte_for_byte_without_conversion(run_cli, hub, user_dirs, fp32_bundle,
                                                                        tmp_path):
    env = {**hub.env(), **user_dirs, "HF_TOKEN": hub.token}
    published = run_cli("model", "publish", fp32_bundle, "--repo", REPO_ID, env=env)
    assert published.returncode == 0, published.stderr
    repo = hub.repos[REPO_ID]
    assert f"{hub.url}/{REPO_ID}/commit/{repo.commit}" in published.stdout
    assert f"riffstudio model get {REPO_ID}" in published.stdout
    assert set(repo.files) == {".gitattributes", "README.md", *bundle_files(fp32_bundle)}  # no cache/
    commit = next(r for r in hub.requests if r.path == f"/api/models/{REPO_ID}/commit/main")
    assert f"riffstudio {__version__}" in json.loads(commit.body.splitlines()[0])["value"]["summary"]

    card = repo.files["README.md"].source.read_text()
    manifest = json.loads((fp32_bundle / "manifest.json").read_text())
    assert card.startswith("---\nlicense: creativeml-openrail-m\n") and "\nlibrary_name: onnx\n" in card
    assert "\nbase_model: \"riffusion/riffusion-model-v1\"\n" in card and LICENSE_URL in card
    assert all(f"- {restriction}\n" in card for restriction in USE_RESTRICTIONS) and len(USE_RESTRICTIONS) == 11
    for credit in ("Seth Forsgren", "Hayk Martiros", "Stability AI", "CompVis", "RunwayML"):
        assert credit in card
    assert manifest["source_revision"] in card and manifest["onnxruntime_version"] in card
    assert manifest["runtime"]["converted_on_cpu"] in card and manifest["files"][0]["sha256"] in card

    out = tmp_path / "got"
    got = run_cli("model", "get", REPO_ID, "--out", out, "--precision", "auto", "--json", env=env)
    assert got.returncode == 0, got.stderr
    events = [json.loads(line) for line in got.stdout.splitlines()]
    assert events[0]["event"] == "note" and "a published fp32 bundle" in events[0]["message"]
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert not [s for s in stages if any(word in s for word in ("pouring", "quantising", "calibrating"))]
    assert any(s.startswith("downloading ") for s in stages) and "checking unet.onnx" in stages
    assert events[-1] == {"event": "done", "bundle": str(out)}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        bundle_files(fp32_bundle))
    for name in bundle_files(fp32_bundle):
        assert (out / name).read_bytes() == (fp32_bundle / name).read_bytes(), name
    assert "README.md" not in fetched(hub)
    assert not any((tmp_path / "cache" / "riffstudio" / "downloads").rglob("*.onnx"))  # moved, not copied
    check = run_cli("model", "check", out, env=env)
    assert check.returncode == 0, check.stderr


def test_a_file_altered_on_the_hub_or_another_precision_asked_for_installs_nothing(run_cli, hub, user_dirs,
                                                                                  fp32_bundle, tmp_path):
    hub.repos[REPO_ID] = FakeRepo(REPO_ID, copy_bundle(fp32_bundle, tmp_path / "repo"))
    env, out = {**hub.env(), **user_dirs}, tmp_path / "got"

    line = one_line(run_cli("model", "get", REPO_ID, "--out", out, "--precision", "int8", env=env))
    assert "published fp32 bundle, but int8 was asked for" in line and "--precision auto" in line
    assert fetched(hub) == {"manifest.json"}

    hub.corrupt.add("unet.onnx")
    line = one_line(run_cli("model", "get", REPO_ID, "--out", out, env=env))
    assert "unet.onnx" in line and "damaged" in line
    assert not out.exists() and not (tmp_path / "data" / "riffstudio" / "models").exists()


def test_a_repo_that_disagrees_with_its_manifest_is_one_line_before_any_download(run_cli, hub, user_dirs,
                                                                                fp32_bundle, tmp_path):
    lacking = copy_bundle(fp32_bundle, tmp_path / "lacking")
    (lacking / "vae_encoder.onnx").unlink()
    other = copy_bundle(fp32_bundle, tmp_path / "other")
    data = bytearray((other / "unet.onnx").read_bytes())
    data[-1] ^= 0xFF  # the same size, another sha256 on the Hub than in the manifest
    (other / "unet.onnx").write_bytes(bytes(data))
    hub.repos.update({"riffstudio-tests/lacking": FakeRepo("riffstudio-tests/lacking", lacking),
                      "riffstudio-tests/other": FakeRepo("riffstudio-tests/other", other)})
    env = {**hub.env(), **user_dirs}

    line = one_line(run_cli("model", "get", "riffstudio-tests/lacking", "--out", tmp_path / "a", env=env))
    assert "lists vae_encoder.onnx, which the repository lacks" in line
    line = one_line(run_cli("model", "get", "riffstudio-tests/other", "--out", tmp_path / "b", env=env))
    assert "disagrees with its manifest: unet.onnx has another sha256" in line
    assert fetched(hub) == {"manifest.json"} and not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_publish_refuses_a_non_bundle_an_altered_file_or_no_token_before_any_request(run_cli, hub, user_dirs,
                                                                                     fp32_bundle, tmp_path):
    env = {**hub.env(), **user_dirs, "HF_TOKEN": hub.token}
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "unet.onnx").write_bytes(b"not a bundle")
    assert "no manifest.json" in one_line(run_cli("model", "publish", loose, "--repo", REPO_ID, env=env))
    altered = copy_bundle(fp32_bundle, tmp_path / "altered")
    with (altered / "vae_decoder.onnx").open("r+b") as file:
        file.seek(100)
        byte = file.read(1)
        file.seek(100)
        file.write(bytes([byte[0] ^ 0xFF]))
    line = one_line(run_cli("model", "publish", altered, "--repo", REPO_ID, env=env))
    assert "is not published" in line and "vae_decoder.onnx was altered" in line
    line = one_line(run_cli("model", "publish", fp32_bundle, "--repo", REPO_ID, env={**env, "HF_TOKEN": ""}))
    assert "needs a token" in line and "hf auth login" in line
    assert hub.requests == []

    line = one_line(run_cli("model", "publish", fp32_bundle, "--repo", REPO_ID, env={**env, "HF_TOKEN": "hf_wrong"}))
    assert "did not accept the token" in line and "hf auth login" in line
    read_only = one_line(run_cli("model", "publish", fp32_bundle, "--repo", REPO_ID,
                                 env={**env, "HF_TOKEN": hub.read_token}))
    assert "may not write to riffstudio-tests/riffusion-fp32 (403)" in read_only
    assert REPO_ID not in hub.repos
