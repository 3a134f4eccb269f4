"""`riffstudio batch --cluster`: the same items on Ray actors give the same files and summary as a local batch,
each result exactly once when a worker is killed or the driver stopped, and one line when Ray is missing or the
cluster unreachable. A real local Ray (2 CPUs), one per module."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO
from test_batch import FAST, check_complete, result_files, six_items

from plugin.batch import SUMMARY, InProcessRenderer, run_batch

ray = pytest.importorskip("ray", reason="the cluster extra (Ray) is not installed here")

pytestmark = [pytest.mark.usefixtures("home"), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def local_ray():
    """Ray on this machine for the module's tests: 2 CPUs, no dashboard; its workers import this checkout."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), previous]))  # inherited by the workers
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        yield ray
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def cluster_renderer(**options):
    from plugin.cluster import ClusterRenderer

    return ClusterRenderer(workers=2, cpus_per_worker=1, **options)


def comparable(summary: dict) -> dict:
    """A summary without what differs from run to run (its time, each item's rendering time)."""
    items = [{k: v for k, v in entry.items() if k != "seconds"} for entry in summary["items"]]
    return {**{k: v for k, v in summary.items() if k != "updated"}, "items": items}


@pytest.mark.slow
def test_a_cluster_batch_gives_the_local_batch_files_names_and_summary(tmp_path, fp32_bundle, local_ray):
    presets = six_items(tmp_path, fp32_bundle, fixed_seeds=True)
    local = run_batch(presets, tmp_path / "local", InProcessRenderer(), say=lambda _: None)
    renderer = cluster_renderer()
    remote = run_batch(presets, tmp_path / "cluster", renderer, say=lambda _: None)
    assert (local.done, remote.done, remote.failed) == (6, 6, 0)
    for where in renderer.where:  # the workers run this checkout, one ONNX Runtime thread per CPU Ray gave
        assert Path(where["plugin"]).is_relative_to(REPO) and where["threads"] == 1, where
    assert len({where["pid"] for where in renderer.where}) == 2
    check_complete(tmp_path / "cluster", 6)
    local_summary = json.loads((tmp_path / "local" / SUMMARY).read_text())
    cluster_summary = json.loads((tmp_path / "cluster" / SUMMARY).read_text())
    assert comparable(cluster_summary) == comparable(local_summary)
    assert (tmp_path / "cluster" / "summary.csv").read_bytes() == (tmp_path / "local" / "summary.csv").read_bytes()
    names = [p.relative_to(tmp_path / "local") for p in result_files(tmp_path / "local")]
    assert names == [p.relative_to(tmp_path / "cluster") for p in result_files(tmp_path / "cluster")]
    for name in names:
        if name.suffix != ".json":  # the audio files, byte for byte
            assert (tmp_path / "cluster" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    sidecar = json.loads((tmp_path / "cluster" / next(n for n in names if n.suffix == ".json")).read_text())
    assert sidecar["cluster"]["worker"] in ("worker 1", "worker 2")


@pytest.mark.slow
def test_a_node_without_the_bundle_gets_it_through_ray_once_checked(tmp_path, fp32_bundle, local_ray):
    """Workers on a node that lacks the bundle folder (the test hook makes both act so) fetch it from the
    driver through Ray into the node's cache, once for the node, checked file by file against the manifest."""
    from engine.bundle.manifest import bundle_identity
    from engine.file_hash import file_sha256
    from plugin.cluster_worker import NODE_WITHOUT_BUNDLE_ENV

    presets = tmp_path / "two.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "warm pad"\n'
                       'seeds = [1, 2]\n', encoding="utf-8")
    cache = tmp_path / "node-cache"
    renderer = cluster_renderer(worker_env={NODE_WITHOUT_BUNDLE_ENV: "1", "XDG_CACHE_HOME": str(cache)})
    try:
        result = run_batch(presets, tmp_path / "out", renderer, say=lambda _: None)
    finally:
        renderer.close()
    assert (result.done, result.failed) == (2, 0)
    check_complete(tmp_path / "out", 2)
    folder = cache / "riffstudio" / "cluster-bundles"
    (fetched,) = (p for p in folder.iterdir() if not p.name.endswith(".lock"))  # one copy for the node, no leftovers
    assert fetched.name == bundle_identity(fp32_bundle) == bundle_identity(fetched)
    manifest = json.loads((fp32_bundle / "manifest.json").read_text())
    for entry in manifest["files"]:
        assert file_sha256(fetched / entry["path"]) == entry["sha256"]


def test_a_bundle_damaged_on_its_way_is_refused_and_leaves_nothing(tmp_path, fp32_bundle):
    from engine.bundle.manifest import bundle_identity
    from engine.errors import ModelBundleError
    from plugin.cluster_worker import BundleServer, fetch_bundle

    identity = bundle_identity(fp32_bundle)
    server = BundleServer({identity: str(fp32_bundle)})

    def damaged(relative: str, offset: int) -> bytes:
        piece = server.piece(identity, relative, offset)
        return piece[:-1] + bytes([piece[-1] ^ 1]) if piece and relative.endswith(".onnx") else piece

    with pytest.raises(ModelBundleError, match="arrived damaged"):
        fetch_bundle(identity, lambda: server.manifest(identity), damaged, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f".{identity}.lock"]  # no bundle, no half-written folder
    good = fetch_bundle(identity, lambda: server.manifest(identity), lambda r, o: server.piece(identity, r, o),
                        tmp_path)
    assert bundle_identity(good) == identity


@pytest.mark.slow
def test_a_worker_killed_mid_item_is_rendered_again_and_written_once(tmp_path, fp32_bundle, local_ray):
    presets = six_items(tmp_path, fp32_bundle, fixed_seeds=True)
    killed = threading.Event()

    def kill_soon(status) -> None:
        if not killed.is_set() and status.workers and status.workers[0].running is not None:
            killed.set()
            actor = renderer.slots[0].actor
            threading.Timer(0.3, lambda: ray.kill(actor)).start()  # inside the item (opening or rendering)

    renderer = cluster_renderer(report=kill_soon)
    result = run_batch(presets, tmp_path / "out", renderer, say=lambda _: None)
    assert killed.is_set() and renderer.replaced == 1
    assert (result.done, result.failed, result.remaining) == (6, 0, 0)
    check_complete(tmp_path / "out", 6)  # each result once: 6 loops and their sidecars, nothing else


@pytest.mark.slow
def test_a_driver_stopped_after_three_renders_only_what_is_missing_when_started_again(tmp_path, fp32_bundle,
                                                                                      local_ray):
    presets = six_items(tmp_path, fp32_bundle, fixed_seeds=True)
    out = tmp_path / "out"

    def stop_after_three(status) -> None:
        if status.done >= 3:
            renderer.cancel_now.set()  # as a second Ctrl+C: the actors are killed, the driver stops

    renderer = cluster_renderer(report=stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        run_batch(presets, out, renderer, say=lambda _: None)
    first = json.loads((out / SUMMARY).read_text())
    kept = {e["audio"]: (out / e["audio"]).stat().st_ino for e in first["items"] if e["state"] == "done"}
    assert 3 <= len(kept) < 6 and first["counts"]["pending"] == 6 - len(kept)
    assert len(result_files(out)) == 2 * len(kept)

    again = run_batch(presets, out, cluster_renderer(), say=lambda _: None)
    assert (again.skipped, again.done) == (len(kept), 6 - len(kept))
    check_complete(out, 6)
    assert all((out / audio).stat().st_ino == inode for audio, inode in kept.items())  # kept, not redone


@pytest.mark.slow
def test_an_item_failing_for_its_own_reasons_fails_alone_after_one_retry(tmp_path, fp32_bundle, local_ray):
    not_audio = tmp_path / "riff.wav"
    not_audio.write_text("not a wave file")
    presets = tmp_path / "pack.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "kick"\nseeds = [1, 2]\n\n'
                       f'[[preset]]\nprompt = "riff"\nseeds = [1]\ninit_audio = "{not_audio}"\nstrength = 0.5\n')
    renderer = cluster_renderer()
    result = run_batch(presets, tmp_path / "out", renderer, say=lambda _: None)
    assert (result.done, result.failed) == (2, 1) and renderer.retried == 1
    summary = json.loads((tmp_path / "out" / SUMMARY).read_text())
    failed = [e for e in summary["items"] if e["state"] == "failed"]
    assert [e["label"] for e in failed] == ["riff (seed 1)"] and "riff.wav" in failed[0]["error"]


def _cli(*args: str, before: str = "") -> subprocess.CompletedProcess:
    code = f"import sys; {before}from ui.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)


def test_without_ray_cluster_is_one_line_saying_how_to_install_it(tmp_path, fp32_bundle):
    presets = six_items(tmp_path, fp32_bundle, fixed_seeds=True)
    done = _cli("batch", str(presets), "--out", str(tmp_path / "out"), "--cluster", "auto",
                before="sys.modules['ray'] = None; ")  # `import ray` fails, as where the extra is missing
    assert done.returncode == 7, done.stderr
    assert done.stderr.count("\n") == 1 and 'pip install "riffstudio[cluster]"' in done.stderr, done.stderr
    assert "Windows on ARM64" in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_unreachable_cluster_is_one_line_before_anything_is_written(tmp_path, fp32_bundle):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    presets = six_items(tmp_path, fp32_bundle, fixed_seeds=True)
    done = _cli("batch", str(presets), "--out", str(tmp_path / "out"), "--cluster", f"ray://127.0.0.1:{port}")
    assert done.returncode == 7, done.stderr
    assert done.stderr.startswith(f"riffstudio: cannot reach the Ray cluster at ray://127.0.0.1:{port}"), done.stderr
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_app_and_a_local_batch_never_import_ray(tmp_path, fp32_bundle):
    presets = tmp_path / "one.toml"
    presets.write_text(f'[defaults]\nmodel = "{fp32_bundle}"\n{FAST}\n[[preset]]\nprompt = "kick"\nseeds = [1]\n')
    check = ("import pkgutil, importlib, ui.app\n"
             "for module in pkgutil.iter_modules(ui.app.__path__):\n"
             "    importlib.import_module('ui.app.' + module.name)\n"
             "from ui.cli.main import main\n"
             f"assert main(['batch', {str(presets)!r}, '--out', {str(tmp_path / 'out')!r}]) == 0\n"
             "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.')))\n")
    done = subprocess.run([sys.executable, "-c", "import sys\n" + check], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"



def test_only_the_cluster_modules_import_ray():
    """Every import in the tree, lazy ones too: Ray (the cluster extra) is loaded by plugin/cluster.py and the
    actor's module alone, so nothing else can need the extra."""
    import ast

    allowed = {"plugin/cluster.py", "plugin/cluster_worker.py"}
    found = set()
    for folder in ("engine", "plugin", "ui", "packaging"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(name == "ray" or name.startswith("ray.") for name in names):
                    found.add(path.relative_to(REPO).as_posix())
    assert found <= allowed and "plugin/cluster.py" in found, found
