"""The fake Hub (tests/fake_hub.py) checked against the real huggingface_hub: what the library sends it and makes
of its answers, its faults as a client sees them, and its end.

Most tests run the library in this process: huggingface_hub reads HF_ENDPOINT, HF_HOME and the rest into
`huggingface_hub.constants` once, at import, so setting them now changes nothing; `use_in_process` (see its
docstring) sets them and re-derives those constants for the test, and monkeypatch undoes it all. One test runs
the library in a child process given only `hub.env()` and HF_HOME, the way a command under test would be run,
which checks that those variables alone are enough. HF_HOME and XDG_CACHE_HOME point into tmp_path throughout,
so no test reads or writes the user's caches or token."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fake_hub import LFS_POINTER, FakeHub, FakeRepo, corrupt_offset, git_blob_id, use_in_process

REPO_ID = "riffusion/riffusion-model-v1"
PRIVATE_ID = "riffusion/private-model"
WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
WEIGHTS_BYTES = 6000


@pytest.fixture
def repo_folder(tmp_path: Path) -> Path:
    """A small diffusers-like layout: three small JSON files (plain git) and a few KB of weights (LFS)."""
    folder = tmp_path / "repo"
    (folder / "unet").mkdir(parents=True)
    (folder / "tokenizer").mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (folder / "unet" / "config.json").write_text(json.dumps({"sample_size": 64, "in_channels": 4}))
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(random.Random(7).randbytes(WEIGHTS_BYTES))
    (folder / "tokenizer" / "vocab.json").write_text(json.dumps({"music</w>": 0, "bass</w>": 1}))
    return folder


@pytest.fixture
def hub(repo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    repos = [FakeRepo(REPO_ID, repo_folder), FakeRepo(PRIVATE_ID, repo_folder, private=True)]
    with FakeHub(repos) as hub:
        use_in_process(hub, monkeypatch, tmp_path)
        yield hub


def content(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and ".cache" not in path.relative_to(folder).parts}


def raw(hub: FakeHub, method: str, path: str, headers: dict[str, str] | None = None):
    """One request with the standard library's client: (status, headers, body; or the bytes read before the
    connection ended, for a body cut short)."""
    connection = http.client.HTTPConnection(hub.url.removeprefix("http://"), timeout=5)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        try:
            body = response.read()
        except http.client.IncompleteRead as short:
            body = short.partial
        return response.status, response.headers, body
    finally:
        connection.close()


def test_model_info_with_files_metadata_gives_the_commit_sizes_blob_ids_and_lfs_sha256(hub, repo_folder):
    from huggingface_hub import HfApi

    info = HfApi().model_info(REPO_ID, files_metadata=True)

    assert hub.requests[-1].path == f"/api/models/{REPO_ID}" and hub.requests[-1].query == "blobs=true"
    assert info.id == REPO_ID and info.sha == hub.repos[REPO_ID].commit and info.private is False
    files = content(repo_folder)
    assert sorted(sibling.rfilename for sibling in info.siblings) == sorted(files)
    for sibling in info.siblings:
        data = files[sibling.rfilename]
        assert sibling.size == len(data)
        if sibling.rfilename == WEIGHTS:
            pointer = LFS_POINTER.format(sha256=hashlib.sha256(data).hexdigest(), size=len(data)).encode()
            assert sibling.lfs.sha256 == hashlib.sha256(data).hexdigest() and sibling.lfs.size == len(data)
            assert sibling.lfs.pointer_size == len(pointer) and sibling.blob_id == git_blob_id(pointer)
        else:
            assert sibling.lfs is None and sibling.blob_id == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_model_info_without_metadata_names_the_files_and_answers_main_the_commit_or_revision_not_found(hub):
    from huggingface_hub import HfApi, model_info
    from huggingface_hub.errors import RevisionNotFoundError

    commit = hub.repos[REPO_ID].commit
    plain = model_info(REPO_ID)  # the library's module-level HfApi, made at import, reaches the fake too
    assert plain.sha == commit and all(s.size is None and s.lfs is None for s in plain.siblings)
    assert HfApi().model_info(REPO_ID, revision=commit).sha == commit
    assert hub.requests[-1].path == f"/api/models/{REPO_ID}/revision/{commit}"
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(REPO_ID, revision="refs/pr/1")
    assert hub.requests[-1].path == f"/api/models/{REPO_ID}/revision/refs%2Fpr%2F1"


def test_tree_listing_and_paths_info_describe_files_and_folders_as_the_hub_does(hub, repo_folder):
    from huggingface_hub import HfApi, RepoFile, RepoFolder

    api, repo = HfApi(), hub.repos[REPO_ID]
    assert api.list_repo_files(REPO_ID) == sorted(content(repo_folder))
    root = {entry.path: entry for entry in api.list_repo_tree(REPO_ID)}
    assert set(root) == {"model_index.json", "tokenizer", "unet"}
    assert isinstance(root["unet"], RepoFolder) and root["unet"].tree_id == repo.tree_ids["unet"]
    unet = {entry.path: entry for entry in api.list_repo_tree(REPO_ID, "unet", expand=True)}
    assert set(unet) == {"unet/config.json", WEIGHTS}
    assert unet[WEIGHTS].lfs.sha256 == repo.files[WEIGHTS].sha256 and unet[WEIGHTS].size == WEIGHTS_BYTES
    assert unet[WEIGHTS].last_commit.oid == repo.commit and unet[WEIGHTS].security.safe
    assert hub.requests[-1].path == f"/api/models/{REPO_ID}/tree/main/unet"
    assert hub.requests[-1].query == "recursive=false&expand=true"
    found = api.get_paths_info(REPO_ID, ["unet/config.json", "tokenizer", "missing.txt"], revision=repo.commit)
    assert [(type(entry), entry.path) for entry in found] == [(RepoFile, "unet/config.json"), (RepoFolder, "tokenizer")]
    assert hub.requests[-1].method == "POST" and hub.requests[-1].path.endswith(f"/paths-info/{repo.commit}")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_default_commit_and_tree_ids_are_the_ones_git_makes_of_the_folder(repo_folder):
    repo = FakeRepo(REPO_ID, repo_folder, lfs_threshold=1 << 30)  # no LFS: git stores the files themselves
    env = {**os.environ, "GIT_AUTHOR_NAME": "Riffstudio Tests", "GIT_AUTHOR_EMAIL": "tests@riffstudio.invalid",
           "GIT_AUTHOR_DATE": "1671062400 +0000", "GIT_COMMITTER_DATE": "1671062400 +0000",
           "GIT_COMMITTER_NAME": "Riffstudio Tests", "GIT_COMMITTER_EMAIL": "tests@riffstudio.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo_folder, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    tree = git("write-tree")
    assert tree == repo.tree_ids[""]
    assert git("rev-parse", f"{tree}:unet") == repo.tree_ids["unet"]
    assert git("commit-tree", tree, "-m", "Initial commit") == repo.commit


def test_hf_hub_download_and_snapshot_download_fetch_identical_bytes_over_plain_http(hub, repo_folder, tmp_path):
    from huggingface_hub import hf_hub_download, snapshot_download

    files = content(repo_folder)
    for name, data in files.items():
        path = Path(hf_hub_download(REPO_ID, name))
        assert path.read_bytes() == data and path.is_relative_to(tmp_path / "hf_home" / "hub")
    local = Path(snapshot_download(REPO_ID, local_dir=tmp_path / "local", force_download=True))
    assert content(local) == files
    cached = Path(snapshot_download(REPO_ID, revision=hub.repos[REPO_ID].commit))
    assert content(cached) == files

    assert {record.status for record in hub.requests} == {200}  # served directly: no redirect, no error
    assert all(record.path.startswith((f"/api/models/{REPO_ID}", f"/{REPO_ID}/resolve/")) for record in hub.requests)
    download = next(r for r in hub.requests if r.method == "GET" and r.path.endswith(WEIGHTS))
    assert "hf_hub/" in download.headers["user-agent"] and "authorization" not in download.headers


def test_get_hf_file_metadata_gives_the_commit_etag_and_size(hub, repo_folder):
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    repo = hub.repos[REPO_ID]
    url = hf_hub_url(REPO_ID, WEIGHTS)
    weights = get_hf_file_metadata(url)
    assert url == f"{hub.url}/{REPO_ID}/resolve/main/{WEIGHTS}" and weights.location == url
    assert weights.commit_hash == repo.commit and weights.size == WEIGHTS_BYTES and weights.xet_file_data is None
    assert weights.etag == hashlib.sha256((repo_folder / WEIGHTS).read_bytes()).hexdigest()
    config = get_hf_file_metadata(hf_hub_url(REPO_ID, "unet/config.json", revision=repo.commit))
    data = (repo_folder / "unet" / "config.json").read_bytes()
    assert config.etag == git_blob_id(data) and config.size == len(data) and config.commit_hash == repo.commit
    assert hub.requests[-1].method == "HEAD" and hub.requests[-1].headers["accept-encoding"] == "identity"

    status, headers, body = raw(hub, "HEAD", f"/{REPO_ID}/resolve/main/{WEIGHTS}")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(WEIGHTS_BYTES))
    assert headers["Accept-Ranges"] == "bytes" and headers["X-Repo-Commit"] == repo.commit
    assert headers["X-Linked-Etag"] == headers["ETag"] == f'"{weights.etag}"'
    assert headers["X-Linked-Size"] == str(WEIGHTS_BYTES) and "Location" not in headers
    assert not [name for name in headers if name.lower().startswith("x-xet")]


def test_unknown_repo_revision_and_file_raise_the_library_errors(hub):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("riffusion/no-such-model")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("riffusion/no-such-model", "model_index.json")
    with pytest.raises(RemoteEntryNotFoundError) as missing:
        hf_hub_download(REPO_ID, "unet/missing.bin")
    assert isinstance(missing.value, EntryNotFoundError) and missing.value.response.status_code == 404
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO_ID, "unet/config.json", revision="v2")
    with pytest.raises(RemoteEntryNotFoundError):
        list(HfApi().list_repo_tree(REPO_ID, "vae"))
    assert raw(hub, "GET", "/api/whoami-v2")[0] == 404
    assert raw(hub, "GET", f"/datasets/{REPO_ID}/resolve/main/model_index.json")[0] == 404


def test_a_private_repo_is_served_with_the_hub_token_only(hub, repo_folder, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    with pytest.raises(RepositoryNotFoundError) as anonymous:
        HfApi().model_info(PRIVATE_ID)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(PRIVATE_ID, WEIGHTS)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download(PRIVATE_ID)
    with pytest.raises(HfHubHTTPError) as wrong:  # a bad token is refused everywhere, as by the Hub
        HfApi(token="hf_wrong").model_info(REPO_ID)
    assert wrong.value.response.status_code == 401 and not isinstance(wrong.value, RepositoryNotFoundError)

    assert HfApi(token=hub.token).model_info(PRIVATE_ID).private is True
    assert hub.requests[-1].headers["authorization"] == f"Bearer {hub.token}"
    local = Path(snapshot_download(PRIVATE_ID, local_dir=tmp_path / "private", token=hub.token))
    assert content(local) == content(repo_folder)


def test_a_range_get_gets_the_tail_with_206_and_a_start_past_the_end_416(hub, repo_folder):
    data = (repo_folder / WEIGHTS).read_bytes()
    url = f"/{REPO_ID}/resolve/main/{WEIGHTS}"

    status, headers, body = raw(hub, "GET", url, {"Range": "bytes=4000-"})
    assert (status, headers["Content-Range"], body) == (206, f"bytes 4000-5999/{WEIGHTS_BYTES}", data[4000:])
    assert headers["Content-Length"] == "2000"
    status, headers, body = raw(hub, "GET", url, {"Range": "bytes=10-19"})
    assert (status, headers["Content-Range"], body) == (206, f"bytes 10-19/{WEIGHTS_BYTES}", data[10:20])
    status, headers, _ = raw(hub, "GET", url, {"Range": f"bytes={WEIGHTS_BYTES}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{WEIGHTS_BYTES}")

    hub.ignore_range = True
    assert raw(hub, "GET", url, {"Range": "bytes=4000-"})[::2] == (200, data)


def test_drop_after_bytes_ends_one_get_early_and_the_library_resumes_with_a_range(hub, repo_folder, monkeypatch):
    import huggingface_hub.constants
    from huggingface_hub import hf_hub_download

    data = (repo_folder / WEIGHTS).read_bytes()
    hub.drop_after_bytes[WEIGHTS] = 2500
    status, headers, body = raw(hub, "GET", f"/{REPO_ID}/resolve/main/{WEIGHTS}")
    assert (status, headers["Content-Length"], body) == (200, str(WEIGHTS_BYTES), data[:2500])
    assert WEIGHTS not in hub.drop_after_bytes  # used up: the next GET is whole
    assert raw(hub, "GET", f"/{REPO_ID}/resolve/main/{WEIGHTS}")[2] == data

    # The library resumes from the last whole chunk it read (constants.DOWNLOAD_CHUNK_SIZE, 10 MiB: below
    # that it starts over), after a 1 s pause. Chunks of 1 KiB here: the 476 bytes after the first are lost.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    hub.drop_after_bytes[WEIGHTS] = 1500
    assert Path(hf_hub_download(REPO_ID, WEIGHTS)).read_bytes() == data
    gets = [(r.headers.get("range"), r.status) for r in hub.requests if r.method == "GET"][2:]
    assert gets == [(None, 200), ("bytes=1024-", 206)]


def test_corrupt_flips_one_byte_and_keeps_the_true_size_and_hashes(hub, repo_folder):
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    data = (repo_folder / WEIGHTS).read_bytes()
    hub.corrupt.add(WEIGHTS)
    served = raw(hub, "GET", f"/{REPO_ID}/resolve/main/{WEIGHTS}")[2]
    assert len(served) == len(data)
    assert [i for i in range(len(data)) if served[i] != data[i]] == [corrupt_offset(WEIGHTS_BYTES)]
    assert raw(hub, "GET", f"/{REPO_ID}/resolve/main/{WEIGHTS}", {"Range": "bytes=2990-3009"})[2] == served[2990:3010]
    metadata = get_hf_file_metadata(hf_hub_url(REPO_ID, WEIGHTS))
    assert metadata.etag == hashlib.sha256(data).hexdigest() and metadata.size == WEIGHTS_BYTES
    # The library checks the size only: the corrupt bytes reach the cache (the hash is the caller's to check).
    assert Path(hf_hub_download(REPO_ID, WEIGHTS)).read_bytes() == served


def test_offline_mode_answers_from_the_cache_and_sends_nothing(hub, repo_folder, monkeypatch):
    import huggingface_hub.constants
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    cached = hf_hub_download(REPO_ID, "unet/config.json")
    seen = len(hub.requests)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1 at import
    assert hf_hub_download(REPO_ID, "unet/config.json") == cached
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO_ID, "model_index.json")
    with pytest.raises(OfflineModeIsEnabled):
        HfApi().model_info(REPO_ID)
    assert len(hub.requests) == seen


def test_a_child_process_given_hub_env_and_hf_home_downloads_from_the_fake(repo_folder, tmp_path):
    script = (
        "import json, sys, huggingface_hub as hf\n"
        "path = hf.snapshot_download(sys.argv[1])\n"
        "print(json.dumps([hf.constants.ENDPOINT, hf.model_info(sys.argv[1]).sha, path]))\n"
    )
    with FakeHub([FakeRepo(REPO_ID, repo_folder)]) as hub:
        env = {name: value for name, value in os.environ.items() if not name.startswith(("HF_", "HUGGING"))}
        env.update(hub.env(), HF_HOME=str(tmp_path / "child_home"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
        run = subprocess.run([sys.executable, "-c", script, REPO_ID], env=env, capture_output=True, text=True,
                             timeout=60)
    assert run.returncode == 0, run.stderr
    endpoint, sha, path = json.loads(run.stdout.splitlines()[-1])
    assert (endpoint, sha) == (hub.url, hub.repos[REPO_ID].commit)
    assert Path(path).is_relative_to(tmp_path / "child_home") and content(Path(path)) == content(repo_folder)


def test_the_server_stops_with_its_context_and_closes_kept_alive_connections(repo_folder):
    with FakeHub([FakeRepo(REPO_ID, repo_folder)]) as hub:
        port = int(hub.url.rsplit(":", 1)[1])
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        kept.request("GET", f"/api/models/{REPO_ID}")
        assert kept.getresponse().read() and kept.sock is not None  # HTTP/1.1: still open
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises((OSError, http.client.HTTPException)):  # reset, or closed without an answer
        kept.request("GET", f"/api/models/{REPO_ID}")
        kept.getresponse()
    kept.close()


def test_upload_folder_commits_files_that_hf_hub_download_returns_byte_identical(hub, repo_folder, tmp_path):
    """The write API as create_repo and upload_folder use it (plain LFS: Xet is off): small files in the commit,
    the weights through the LFS batch API, a PUT to the URL it gives, and verify; a new commit is served at once."""
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi(token=hub.token)
    url = api.create_repo("riffstudio-tests/uploaded", private=True)
    assert url == f"{hub.url}/riffstudio-tests/uploaded"
    assert api.create_repo("riffstudio-tests/uploaded", exist_ok=True) == url
    first = api.model_info("riffstudio-tests/uploaded").sha
    (repo_folder / "README.md").write_text("---\nlicense: mit\n---\n# A test model\n")
    info = api.upload_folder(repo_id="riffstudio-tests/uploaded", folder_path=repo_folder, commit_message="Upload")

    served = api.model_info("riffstudio-tests/uploaded", files_metadata=True)
    assert info.oid == served.sha != first and info.commit_url.endswith(f"/commit/{served.sha}")
    assert {s.rfilename for s in served.siblings} == {".gitattributes", *content(repo_folder)}
    assert next(s for s in served.siblings if s.rfilename == WEIGHTS).lfs.sha256 == hashlib.sha256(
        (repo_folder / WEIGHTS).read_bytes()).hexdigest()
    for name, data in content(repo_folder).items():
        assert Path(hf_hub_download("riffstudio-tests/uploaded", name, token=hub.token)).read_bytes() == data
    paths = [(r.method, r.path) for r in hub.requests]
    assert ("POST", "/riffstudio-tests/uploaded.git/info/lfs/objects/batch") in paths
    assert ("PUT", "/fake-lfs/" + hashlib.sha256((repo_folder / WEIGHTS).read_bytes()).hexdigest()) in paths
    assert ("POST", "/api/models/riffstudio-tests/uploaded/commit/main") in paths
    assert not (repo_folder / ".gitattributes").exists()  # the repo's own folder is never written


def test_writes_need_the_token_and_a_bad_lfs_object_or_readme_header_is_refused(hub, repo_folder):
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as anonymous:
        HfApi().create_repo("riffstudio-tests/nobody")
    with pytest.raises(HfHubHTTPError) as read_only:
        HfApi(token=hub.read_token).create_repo("riffstudio-tests/nobody")
    assert (anonymous.value.response.status_code, read_only.value.response.status_code) == (401, 403)
    with pytest.raises(HfHubHTTPError) as commit:
        HfApi(token=hub.read_token).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO_ID)
    assert commit.value.response.status_code == 403 and "riffstudio-tests/nobody" not in hub.repos
    with pytest.raises(ValueError, match=r"Invalid metadata in README\.md"):
        HfApi(token=hub.token).create_commit(REPO_ID, [CommitOperationAdd("README.md", b"---\nlicense: [\n---\n")],
                                             commit_message="bad card")
    status = raw(hub, "PUT", "/fake-lfs/" + "0" * 64, {"Content-Length": "0"})[0]
    assert status == 400 and hub.repos[REPO_ID].files.keys() == content(repo_folder).keys()
