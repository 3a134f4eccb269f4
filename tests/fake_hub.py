"""A local stand-in for the Hugging Face Hub's read and write API, for tests (the real Hub cannot be reached
here).

`FakeHub` serves model repos laid out from local folders (`FakeRepo`) over plain HTTP on 127.0.0.1, answering
what `huggingface_hub` (2.4) asks for `model_info` / `repo_info`, `list_repo_files` / `list_repo_tree`,
`get_paths_info`, `get_hf_file_metadata`, `hf_hub_download` and `snapshot_download`:

    GET  /api/models/{repo_id}[/revision/{revision}]      ?blobs=true (files_metadata), ?expand=...
    GET  /api/models/{repo_id}/tree/{revision}[/{path}]   ?recursive=true|false&expand=true|false
    POST /api/models/{repo_id}/paths-info/{revision}      form (or JSON) body: paths=..., expand=...
    HEAD /{repo_id}/resolve/{revision}/{path}             the file's metadata, in headers
    GET  /{repo_id}/resolve/{revision}/{path}             the file, Range honoured (206 / 416)

Files are served directly (never a redirect to a CDN) and without Xet headers, so the library takes its
plain HTTP download path. Everything else gets a 404 JSON body. Errors carry the Hub's `X-Error-Code`
(`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`), which is what the library turns into its exception types.

A repo looks like the git + LFS repo the files would make: a file of `lfs_threshold` bytes or more is an LFS
file (its ETag is its sha256; its git blob is the LFS pointer), a smaller one a plain git blob (its ETag is
the blob's sha1, `sha1(b"blob {size}\\0" + content)`). Folders get their real git tree ids, and the default
commit is the sha1 of a git commit object of that root tree, so it changes whenever a file does. Revisions
are `main` and the commit. The folder is read (hashed) when the `FakeRepo` is made: change it, make a new one.

Auth, like the Hub: a request to a private repo without `Authorization: Bearer <FakeHub.token>` gets 401 with
`X-Error-Code: RepoNotFound` (the library raises `RepositoryNotFoundError`); any request with another bearer
token gets 401 "Invalid credentials in Authorization header" (a plain `HfHubHTTPError`), public repos too.

Faults a test can set at any time: `drop_after_bytes` (a GET's connection is closed mid-body: a real partial
transfer, the client sees fewer bytes than Content-Length), `corrupt` (one byte of the served file flipped:
the middle one, at `corrupt_offset(size)`, XOR 0xFF; sizes and hashes still those of the true file) and
`ignore_range` (a Range is answered 200 with the whole file, as some CDNs do).

The write API, for `create_repo`, `create_commit` and `upload_folder` (Xet disabled: the plain LFS protocol):

    POST /api/repos/create                                JSON: name, organization, visibility|private, type
    POST /api/validate-yaml                               a README.md's metadata header (YAML), checked
    POST /api/models/{repo_id}/preupload/main             which files go to LFS (`lfs_threshold`), which are there
    POST /{repo_id}.git/info/lfs/objects/batch            LFS upload actions: a PUT URL on this server + verify
    PUT  /fake-lfs/{sha256}                               the LFS object (refused unless its sha256 is the name)
    POST /{repo_id}.git/info/lfs/objects/verify           the object arrived whole
    POST /api/models/{repo_id}/commit/main                ndjson: header, file (base64), lfsFile, deletedFile/Folder

Writes need `Authorization: Bearer <FakeHub.token>`: without one 401, with `FakeHub.read_token` (a token that
reads like `token`) 403. A commit makes a new snapshot of the repo in the hub's own folder (the repo's folder is
never written), served at once under a new commit id (a git commit of the new tree with the old one as parent),
so a test can publish and then download what it published. An empty repo holds `.gitattributes`, as the Hub's.

Use: `with FakeHub([FakeRepo("riffusion/riffusion-model-v1", folder)]) as hub:` then run the code under test
with `hub.env()` in its environment (a child process), or, in this process, `use_in_process(hub, monkeypatch,
tmp_path)`, which makes an already imported `huggingface_hub` take the same settings (see its docstring).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import mimetypes
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

CHUNK_BYTES = 64 * 1024  # a GET body is written in chunks of this size
# What the Hub puts in a new repo's first commit (the start of its real .gitattributes).
GITATTRIBUTES = ("*.bin filter=lfs diff=lfs merge=lfs -text\n*.onnx filter=lfs diff=lfs merge=lfs -text\n"
                 "*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.npz filter=lfs diff=lfs merge=lfs -text\n")
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
# The dates the repo reports (creation, last commit); fixed, so a repo's answers depend on its files only.
COMMIT_DATE = "2022-12-15T00:00:00.000Z"
_COMMIT_EPOCH = 1671062400  # COMMIT_DATE in seconds
_COMMIT_TITLE = "Initial commit"
_HEX40 = re.compile(r"[0-9a-f]{40}")
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


def corrupt_offset(size: int) -> int:
    """The offset of the byte `FakeHub.corrupt` flips in a file of `size` bytes (none in an empty file)."""
    return size // 2


def git_blob_id(content: bytes) -> str:
    """The git object id of a blob holding `content`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def git_commit_id(tree: str, parent: str | None = None, title: str = _COMMIT_TITLE) -> str:
    """The git object id of a commit of `tree` (after `parent`, if any), by the tests' author at COMMIT_DATE."""
    body = (f"tree {tree}\n" + (f"parent {parent}\n" if parent else "")
            + f"author Riffstudio Tests <tests@riffstudio.invalid> {_COMMIT_EPOCH} +0000\n"
            f"committer Riffstudio Tests <tests@riffstudio.invalid> {_COMMIT_EPOCH} +0000\n"
            f"\n{title}\n").encode()
    return hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()


@dataclass(frozen=True)
class FakeFile:
    """One file of a repo, as the Hub describes it."""

    path: str  # relative to the repo root, forward slashes
    source: Path  # the local file served
    size: int  # the true file's size (an LFS file's too, not its pointer's)
    blob_id: str  # git oid: of the content, or of the LFS pointer for an LFS file
    sha256: str  # of the content
    lfs: bool
    pointer_size: int  # the LFS pointer's size (0 for a plain git file)

    @property
    def etag(self) -> str:
        """The file's ETag on /resolve, unquoted: the sha256 for an LFS file, the git blob id otherwise."""
        return self.sha256 if self.lfs else self.blob_id


@dataclass
class FakeRepo:
    """A model repo served from `folder` (every file under it, paths relative to it; a `.git` folder is skipped)."""

    repo_id: str  # "riffusion/riffusion-model-v1"
    folder: Path
    commit: str = ""  # 40 hex chars; empty: the git commit id of the content (see the module docstring)
    lfs_threshold: int = 1024  # files of at least this many bytes are LFS files
    private: bool = False  # then only requests with FakeHub.token are served
    files: dict[str, FakeFile] = field(init=False, repr=False)
    tree_ids: dict[str, str] = field(init=False, repr=False)  # folder path ("" is the root) -> git tree id

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if not self.folder.is_dir():
            raise ValueError(f"{self.folder} is not a folder")
        self.files = {}
        for source in sorted(self.folder.rglob("*")):
            relative = source.relative_to(self.folder)
            if source.is_file() and ".git" not in relative.parts:
                self.files[relative.as_posix()] = self._describe(relative.as_posix(), source)
        self.tree_ids = {}
        root_tree = self._tree_id("")
        if not self.commit:
            self.commit = git_commit_id(root_tree)
        elif not _HEX40.fullmatch(self.commit):
            raise ValueError(f"commit must be 40 lowercase hex characters, not {self.commit!r}")

    def _describe(self, path: str, source: Path) -> FakeFile:
        sha256, sha1, size = hashlib.sha256(), hashlib.sha1(), source.stat().st_size
        sha1.update(b"blob %d\0" % size)
        with source.open("rb") as f:
            while chunk := f.read(1 << 20):
                sha256.update(chunk)
                sha1.update(chunk)
        if size < self.lfs_threshold:
            return FakeFile(path, source, size, sha1.hexdigest(), sha256.hexdigest(), lfs=False, pointer_size=0)
        pointer = LFS_POINTER.format(sha256=sha256.hexdigest(), size=size).encode()
        return FakeFile(path, source, size, git_blob_id(pointer), sha256.hexdigest(), lfs=True,
                        pointer_size=len(pointer))

    def _tree_id(self, folder: str) -> str:
        """The git tree id of `folder` ("" for the root), filling tree_ids for it and every folder under it."""
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, tuple[bytes, str]] = {}  # git sort key -> (mode and name, oid)
        for path, file in self.files.items():
            if not path.startswith(prefix):
                continue
            name, _, rest = path[len(prefix):].partition("/")
            if rest:  # git orders a folder as if its name ended with "/"
                entries.setdefault(f"{name}/", (f"40000 {name}".encode(), ""))
            else:
                entries[name] = (f"100644 {name}".encode(), file.blob_id)
        body = b""
        for key in sorted(entries, key=lambda key: key.encode()):
            mode_name, oid = entries[key]
            oid = oid or self._tree_id(prefix + key[:-1])
            body += mode_name + b"\0" + bytes.fromhex(oid)
        tree_id = hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
        self.tree_ids[folder] = tree_id
        return tree_id

    @property
    def folders(self) -> list[str]:
        """Every folder path of the repo, the root ("") excluded."""
        return sorted(path for path in self.tree_ids if path)


@dataclass
class RequestRecord:
    """One request the hub received. `path` is as sent (still %-encoded, no query); header names are lowercase."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    status: int | None = None  # the answer's status, once sent


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class FakeHub:
    """The Hub's read and write API for `repos`, on 127.0.0.1 (a free port) while the context is open."""

    def __init__(self, repos: list[FakeRepo], token: str = "hf_test_token", read_token: str = "hf_read_only_token",
                 storage: Path | None = None) -> None:
        self.repos = {repo.repo_id: repo for repo in repos}
        if len(self.repos) != len(repos):
            raise ValueError("two repos have the same repo_id")
        self.token = token
        self.read_token = read_token  # reads as `token` does; its writes get 403
        # Where commits and LFS uploads are kept (default: a temporary folder of the hub's, removed at close).
        self._storage = Path(storage) if storage is not None else None
        self._own_storage: Path | None = None
        self._storage_lock = threading.Lock()
        self._snapshots = 0
        self.lfs_objects: dict[str, Path] = {}  # sha256 -> the uploaded object
        self.url = ""  # "http://127.0.0.1:PORT" once started
        self.requests: list[RequestRecord] = []  # every request, in arrival order
        # Repo path -> N: the next GET of it whose body is longer than N bytes ends (connection closed) after N
        # of them, and the entry goes (a shorter body is sent whole and leaves the entry). Any repo, any range.
        self.drop_after_bytes: dict[str, int] = {}
        self.corrupt: set[str] = set()  # repo paths served with the byte at corrupt_offset(size) flipped
        self.ignore_range = False  # True: a Range is answered 200 with the whole file
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    def __enter__(self) -> FakeHub:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.hub = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-hub-{server.server_address[1]}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving: no new connection is accepted and the open ones (kept alive by clients) are closed."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._own_storage is not None:
            shutil.rmtree(self._own_storage, ignore_errors=True)
            self._own_storage = None

    def env(self) -> dict[str, str]:
        """Environment variables that point huggingface_hub at this hub and nowhere else.

        HF_HUB_DISABLE_TELEMETRY also stops the library's AI-agent detection, which otherwise fetches
        `{endpoint}/api/agent-harnesses` and writes it under HF_HOME on the first request. Xet is disabled
        (this hub serves plain HTTP only), as are the CLI's update checks; offline mode is off; no token is taken
        from the environment (HF_TOKEN empty: the library then reads HF_HOME/token, so point HF_HOME at a
        test folder too); 127.0.0.1 bypasses any proxy."""
        return {
            "HF_ENDPOINT": self.url,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_ETAG_TIMEOUT": "5",
            "HF_HUB_DOWNLOAD_TIMEOUT": "10",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": "",
            "HUGGING_FACE_HUB_TOKEN": "",
            "HF_OIDC_RESOURCE": "",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    # What the handler threads share.

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def _storage_folder(self, name: str) -> Path:
        """A folder `name` in the hub's storage (made on first use)."""
        with self._storage_lock:
            if self._storage is None and self._own_storage is None:
                self._own_storage = Path(tempfile.mkdtemp(prefix="fake-hub-"))
            folder = (self._storage or self._own_storage) / name
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _snapshot(self, files: dict[str, Path | bytes]) -> Path:
        """A new folder holding `files` (repo path -> a file to link or copy, or the bytes)."""
        with self._lock:
            self._snapshots += 1
            folder = self._storage_folder("snapshots") / f"{self._snapshots:05d}"
        for path, content in files.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
                continue
            try:
                os.link(content, target)
            except OSError:
                shutil.copyfile(content, target)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _publish(self, repo: FakeRepo, folder: Path, parent: str | None, title: str) -> FakeRepo:
        """`folder` served as `repo`'s new state, under a new commit id."""
        fresh = FakeRepo(repo.repo_id, folder, lfs_threshold=repo.lfs_threshold, private=repo.private)
        fresh.commit = git_commit_id(fresh.tree_ids[""], parent, title)
        with self._lock:
            self.repos[repo.repo_id] = fresh
        return fresh

    def _take_drop(self, path: str, body_bytes: int) -> int | None:
        """The drop point of this GET's body, if one is set for `path` and falls inside it (then it is used up)."""
        with self._lock:
            after = self.drop_after_bytes.get(path)
            if after is None or after >= body_bytes:
                return None
            del self.drop_after_bytes[path]
            return max(after, 0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that went away
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub; every answer has a Content-Length
    timeout = 60  # an idle kept-alive connection is dropped after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, True)

    def finish(self) -> None:
        self.server.hub._track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    # Routing.

    def _dispatch(self) -> None:
        hub = self.server.hub
        path, _, query = self.path.partition("?")
        body = self._read_body()
        self.record = RequestRecord(self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, body)
        hub._record(self.record)
        try:
            self._route(hub, path, parse_qs(query, keep_blank_values=True), body)
        except _HubError as error:
            self._send_json(error.status, {"error": error.message}, error.code, error.headers)
        except Exception as error:
            if self.record.status is not None or isinstance(error, (ConnectionError, TimeoutError)):
                self.close_connection = True  # the answer has begun, or the client is gone: nothing more to say
            else:  # a bug of this fake: answered, rather than a dropped connection
                self._send_json(500, {"error": f"fake hub: {type(error).__name__}: {error}"})

    def _read_body(self) -> bytes:
        """The request's body: Content-Length bytes, or a chunked body put together."""
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _route(self, hub: FakeHub, path: str, query: dict[str, list[str]], body: bytes) -> None:
        if self.command in ("POST", "PUT") and self._route_write(hub, path, body):
            return
        if path.startswith("/api/models/"):
            repo, rest = self._repo(hub, path[len("/api/models/"):])
            if self.command == "GET" and (match := re.fullmatch(r"(?:/revision/([^/]+))?/?", rest)):
                self._check_revision(repo, match[1])
                return self._send_json(200, _model_info(repo, query))
            if self.command == "GET" and (match := re.fullmatch(r"/tree/([^/]+)(?:/(.*))?", rest)):
                self._check_revision(repo, match[1])
                recursive, expand = (_truthy(query.get(name, [""])[-1]) for name in ("recursive", "expand"))
                return self._send_json(200, _tree(repo, unquote(match[2] or "").strip("/"), recursive, expand))
            if self.command == "POST" and (match := re.fullmatch(r"/paths-info/([^/]+)/?", rest)):
                self._check_revision(repo, match[1])
                paths, expand = self._paths_info_request(body)
                return self._send_json(200, _paths_info(repo, paths, expand))
            raise _HubError(404, "Not Found")
        if self.command in ("GET", "HEAD") and "/resolve/" in path:
            repo, rest = self._repo(hub, path[1:])
            if match := re.fullmatch(r"/resolve/([^/]+)/(.+)", rest):
                self._check_revision(repo, match[1])
                return self._send_file(hub, repo, unquote(match[2]))
        raise _HubError(404, "Not Found")

    def _repo(self, hub: FakeHub, rest: str) -> tuple[FakeRepo, str]:
        """The repo `rest` starts with and what follows its id; 401 if the request may not see it."""
        self._check_token(hub)
        for repo_id in sorted(hub.repos, key=len, reverse=True):
            if rest == repo_id or rest.startswith(f"{repo_id}/"):
                repo = hub.repos[repo_id]
                if repo.private and self.headers.get("Authorization") != f"Bearer {hub.token}":
                    raise _HubError(401, "Invalid username or password.", "RepoNotFound")
                return repo, rest[len(repo_id):]
        raise _HubError(404, "Repository not found", "RepoNotFound")

    def _check_token(self, hub: FakeHub) -> None:
        authorization = self.headers.get("Authorization")
        if authorization is not None and authorization not in (f"Bearer {hub.token}", f"Bearer {hub.read_token}"):
            raise _HubError(401, "Invalid credentials in Authorization header")

    def _check_write(self, hub: FakeHub, what: str) -> None:
        """Writes need the hub's token: none is 401, the read-only one 403."""
        self._check_token(hub)
        authorization = self.headers.get("Authorization")
        if authorization is None:
            raise _HubError(401, "Invalid username or password.")
        if authorization != f"Bearer {hub.token}":
            raise _HubError(403, f"You don't have the rights to write to {what}: this token is read-only")

    # The write API.

    def _route_write(self, hub: FakeHub, path: str, body: bytes) -> bool:
        """Answer a write request; False when `path` is not one."""
        if self.command == "POST" and path == "/api/repos/create":
            self._create_repo(hub, _json_body(body))
        elif self.command == "POST" and path == "/api/validate-yaml":
            self._validate_yaml(_json_body(body))
        elif self.command == "PUT" and (match := re.fullmatch(r"/fake-lfs/([0-9a-f]{64})", path)):
            self._store_lfs_object(hub, match[1], body)
        elif self.command == "POST" and (match := re.fullmatch(r"/(.+)\.git/info/lfs/objects/(batch|verify)", path)):
            repo, rest = self._repo(hub, unquote(match[1]))
            if rest:
                raise _HubError(404, "Repository not found", "RepoNotFound")
            self._check_write(hub, repo.repo_id)
            data = _json_body(body)
            if match[2] == "batch":
                self._send_json(200, _lfs_batch(hub, repo, data))
            else:
                stored = hub.lfs_objects.get(str(data.get("oid")))
                if stored is None or stored.stat().st_size != data.get("size"):
                    raise _HubError(404, "Object not found")
                self._send_json(200, {})
        elif self.command == "POST" and path.startswith("/api/models/") and (
                match := re.fullmatch(r"(.+)/(preupload|commit)/([^/]+)/?", path[len("/api/models/"):])):
            repo, rest = self._repo(hub, unquote(match[1]))
            if rest:
                raise _HubError(404, "Repository not found", "RepoNotFound")
            self._check_write(hub, repo.repo_id)
            if unquote(match[3]) != "main":
                raise _HubError(404, "Invalid rev id: " + unquote(match[3]), "RevisionNotFound")
            if match[2] == "preupload":
                self._send_json(200, _preupload(repo, _json_body(body)))
            else:
                self._commit(hub, repo, body)
        else:
            return False
        return True

    def _create_repo(self, hub: FakeHub, data: dict[str, Any]) -> None:
        name, organization = str(data.get("name") or ""), data.get("organization")
        repo_id = f"{organization}/{name}" if organization else name
        self._check_write(hub, f"the namespace {organization or name}")
        if data.get("type", "model") != "model" or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo_id):
            raise _HubError(400, "This fake hub creates model repos with valid names only")
        if repo_id in hub.repos:
            # The Hub's 409 names the repo's URL, which create_repo(exist_ok=True) returns.
            return self._send_json(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"})
        private = data.get("visibility") == "private" or data.get("private") is True
        folder = hub._snapshot({".gitattributes": GITATTRIBUTES.encode()})
        hub._publish(FakeRepo(repo_id, folder, private=private), folder, None, "initial commit")
        self._send_json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self, data: dict[str, Any]) -> None:
        import yaml

        content = str(data.get("content", ""))
        match = re.match(r"---\r?\n(.*?)\r?\n---\r?\n", content, re.DOTALL)
        try:
            metadata = yaml.safe_load(match[1]) if match else {}
        except yaml.YAMLError as error:
            problem = f"invalid YAML: {str(error).splitlines()[0]}"
        else:
            problem = None if isinstance(metadata, dict | None) else "the metadata is not a mapping"
        if problem:
            return self._send_json(400, {"error": problem, "errors": [{"message": problem}], "warnings": []})
        warnings = [] if match else [{"message": "Empty or missing yaml metadata in repo card"}]
        self._send_json(200, {"errors": [], "warnings": warnings})

    def _store_lfs_object(self, hub: FakeHub, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise _HubError(400, "The uploaded content does not match its sha256")
        stored = hub._storage_folder("lfs") / oid
        partial = stored.with_name(f"{oid}.{threading.get_ident()}.partial")  # two PUTs of one object may overlap
        partial.write_bytes(body)
        os.replace(partial, stored)
        with hub._lock:
            hub.lfs_objects[oid] = stored
        self._send_json(200, {}, headers={"ETag": f'"{oid}"'})

    def _commit(self, hub: FakeHub, repo: FakeRepo, body: bytes) -> None:
        try:
            items = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _HubError(400, "The commit body is not ndjson") from None
        if not items or items[0].get("key") != "header":
            raise _HubError(400, "The commit has no header")
        header = items[0]["value"]
        parent = header.get("parentCommit")
        if parent and not repo.commit.startswith(parent):
            raise _HubError(412, "A commit has happened since. Please refresh and try again.")
        files: dict[str, Path | bytes] = {path: file.source for path, file in repo.files.items()}
        for item in items[1:]:
            key, value = item.get("key"), item.get("value") or {}
            path = _repo_path(value.get("path"))
            if key == "file":
                files[path] = base64.b64decode(value.get("content", ""))
            elif key == "lfsFile":
                stored = hub.lfs_objects.get(str(value.get("oid")))
                if stored is None:
                    raise _HubError(422, f"LFS object {value.get('oid')} of {path} was never uploaded")
                files[path] = stored
            elif key in ("deletedFile", "deletedFolder"):
                gone = [p for p in files if p == path or (key == "deletedFolder" and p.startswith(f"{path}/"))]
                if not gone:
                    raise _HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                for name in gone:
                    del files[name]
            else:
                raise _HubError(400, f"This fake hub does not take {key!r} commit operations")
        fresh = hub._publish(repo, hub._snapshot(files), repo.commit, str(header.get("summary") or "Update"))
        self._send_json(200, {"success": True, "commitOid": fresh.commit, "hookOutput": "",
                              "commitUrl": f"{hub.url}/{repo.repo_id}/commit/{fresh.commit}"})

    def _check_revision(self, repo: FakeRepo, revision: str | None) -> None:
        if revision is not None and unquote(revision) not in ("main", repo.commit):
            raise _HubError(404, "Invalid rev id: " + unquote(revision), "RevisionNotFound")

    def _paths_info_request(self, body: bytes) -> tuple[list[str], bool]:
        if self.headers.get("Content-Type", "").startswith("application/json"):
            data = json.loads(body or b"{}")
            paths = data.get("paths", [])
            return ([paths] if isinstance(paths, str) else list(paths)), _truthy(str(data.get("expand", "")))
        form = parse_qs(body.decode(), keep_blank_values=True)
        return form.get("paths", []), _truthy(form.get("expand", [""])[-1])

    # Answers.

    def _send_json(self, status: int, data: object, error_code: str | None = None,
                   headers: dict[str, str] | None = None) -> None:
        content = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(content)))
        if error_code is not None:
            self.send_header("X-Error-Code", error_code)
        if status >= 400:  # as one header line: ASCII, control characters escaped
            self.send_header("X-Error-Message", json.dumps(data["error"])[1:-1])
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.record.status = status
        if self.command != "HEAD":
            self.wfile.write(content)

    def _send_file(self, hub: FakeHub, repo: FakeRepo, path: str) -> None:
        file = repo.files.get(path)
        if file is None:
            raise _HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": repo.commit})
        asked = None if hub.ignore_range else self.headers.get("Range")
        span = _byte_range(asked, file.size) if asked is not None else None
        if span == "unsatisfiable":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{file.size}")
            self.send_header("Content-Length", "0")
            self._file_headers(repo, file)
            self.end_headers()
            self.record.status = 416
            return
        status, (start, end) = (206, span) if isinstance(span, tuple) else (200, (0, file.size - 1))
        self.send_response(status)
        self.send_header("Content-Length", str(end + 1 - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{file.size}")
        self._file_headers(repo, file)
        self.end_headers()
        self.record.status = status
        if self.command == "GET":
            self._stream(hub, file, start, end)

    def _file_headers(self, repo: FakeRepo, file: FakeFile) -> None:
        self.send_header("Content-Type", mimetypes.guess_type(file.path)[0] or "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("ETag", f'"{file.etag}"')
        if file.lfs:
            self.send_header("X-Linked-Etag", f'"{file.sha256}"')
            self.send_header("X-Linked-Size", str(file.size))

    def _stream(self, hub: FakeHub, file: FakeFile, start: int, end: int) -> None:
        """Send bytes start..end (inclusive) of `file` in chunks, flipping the corrupt byte, dropping if asked."""
        flip = corrupt_offset(file.size) if file.path in hub.corrupt else None
        drop_after = hub._take_drop(file.path, end + 1 - start)
        sent = 0
        with file.source.open("rb") as f:
            f.seek(start)
            position = start
            while position <= end:
                chunk = f.read(min(CHUNK_BYTES, end + 1 - position))
                if not chunk:
                    break
                if flip is not None and position <= flip < position + len(chunk):
                    changed = bytearray(chunk)
                    changed[flip - position] ^= 0xFF
                    chunk = bytes(changed)
                if drop_after is not None and sent + len(chunk) > drop_after:
                    self.wfile.write(chunk[: drop_after - sent])
                    self.connection.shutdown(socket.SHUT_WR)  # the client reads what was sent, then the end
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
                position += len(chunk)


# The JSON the Hub answers.


def _byte_range(header: str, size: int) -> tuple[int, int] | str | None:
    """The first and last byte `header` (a Range) asks of a `size`-byte file; "unsatisfiable" (-> 416), or None
    for a header this server ignores (not one byte range, or an invalid one, as RFC 9110 allows)."""
    match = _RANGE.fullmatch(header)
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:  # a suffix: the last N bytes
        count = int(match[2])
        return (max(size - count, 0), size - 1) if count and size else "unsatisfiable"
    first, last = int(match[1]), int(match[2]) if match[2] else None
    if last is not None and last < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, size - 1 if last is None else min(last, size - 1)


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _HubError(400, "The body is not JSON") from None
    if not isinstance(data, dict):
        raise _HubError(400, "The body is not a JSON object")
    return data


def _repo_path(path: object) -> str:
    """A path inside a repo, as a commit names it; anything that leaves the repo is refused."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path or any(
            part in ("", ".", "..", ".git") for part in path.split("/")):
        raise _HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _preupload(repo: FakeRepo, data: dict[str, Any]) -> dict[str, Any]:
    """Each file's upload mode (LFS from `lfs_threshold` bytes) and the oid the repo has for it, if any."""
    answers = []
    for entry in data.get("files", []):
        path = _repo_path(entry.get("path"))
        file = repo.files.get(path)
        answers.append({"path": path, "uploadMode": "lfs" if int(entry.get("size", 0)) >= repo.lfs_threshold
                        else "regular", "shouldIgnore": False,
                        "oid": None if file is None else file.sha256 if file.lfs else file.blob_id})
    return {"files": answers, "commitOid": repo.commit}


def _lfs_batch(hub: FakeHub, repo: FakeRepo, data: dict[str, Any]) -> dict[str, Any]:
    """The LFS batch API's answer to an upload: for each object not stored yet, a PUT URL and a verify URL."""
    if data.get("operation") != "upload":
        raise _HubError(400, "This fake hub's LFS batch API only uploads")
    objects = []
    for entry in data.get("objects", []):
        oid, size = str(entry.get("oid")), entry.get("size")
        answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int):
            answer["error"] = {"code": 422, "message": "invalid oid or size"}
        elif oid not in hub.lfs_objects:
            answer["actions"] = {"upload": {"href": f"{hub.url}/fake-lfs/{oid}"},
                                 "verify": {"href": f"{hub.url}/{repo.repo_id}.git/info/lfs/objects/verify"}}
        objects.append(answer)
    return {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")


def _model_info(repo: FakeRepo, query: dict[str, list[str]]) -> dict[str, Any]:
    with_blobs = _truthy(query.get("blobs", [""])[-1])
    siblings = []
    for file in repo.files.values():
        sibling: dict[str, Any] = {"rfilename": file.path}
        if with_blobs:
            sibling.update(size=file.size, blobId=file.blob_id)
            if file.lfs:
                sibling["lfs"] = {"sha256": file.sha256, "size": file.size, "pointerSize": file.pointer_size}
        siblings.append(sibling)
    author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
    info: dict[str, Any] = {
        "_id": repo.commit[:24], "id": repo.repo_id, "modelId": repo.repo_id, "author": author, "sha": repo.commit,
        "lastModified": COMMIT_DATE, "createdAt": COMMIT_DATE, "private": repo.private, "disabled": False,
        "gated": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings, "spaces": [],
        "usedStorage": sum(file.size for file in repo.files.values()),
    }
    expand = [name for value in query.get("expand", []) for name in value.split(",") if name]
    if expand:  # only what was asked for (and the ids), as the Hub does
        info = {key: value for key, value in info.items() if key in ("_id", "id", *expand)}
    return info


def _entry(repo: FakeRepo, path: str, expand: bool) -> dict[str, Any]:
    """The tree / paths-info entry of a file or folder of `repo`."""
    if path in repo.files:
        file = repo.files[path]
        entry: dict[str, Any] = {"type": "file", "oid": file.blob_id, "size": file.size, "path": path}
        if file.lfs:
            entry["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": file.pointer_size}
    else:
        entry = {"type": "directory", "oid": repo.tree_ids[path], "size": 0, "path": path}
    if expand:
        entry["lastCommit"] = {"id": repo.commit, "title": _COMMIT_TITLE, "date": COMMIT_DATE}
        if entry["type"] == "file":
            entry["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False, "virusNames": None},
                                           "pickleImportScan": None}
    return entry


def _tree(repo: FakeRepo, folder: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
    if folder and folder not in repo.tree_ids:
        raise _HubError(404, f"{folder} does not exist on this revision", "EntryNotFound",
                        {"X-Repo-Commit": repo.commit})
    prefix = f"{folder}/" if folder else ""
    paths = [path for path in [*repo.folders, *repo.files] if path.startswith(prefix)]
    if not recursive:
        paths = [path for path in paths if "/" not in path[len(prefix):]]
    return [_entry(repo, path, expand) for path in sorted(paths)]


def _paths_info(repo: FakeRepo, paths: list[str], expand: bool) -> list[dict[str, Any]]:
    found = dict.fromkeys(path.strip("/") for path in paths)  # in order, once each; missing ones are left out
    return [_entry(repo, path, expand) for path in found if path in repo.files or (path and path in repo.tree_ids)]


# huggingface_hub in this process.

# Variables that would send the library's caches or token elsewhere than HF_HOME, or change its endpoint.
_OVERRIDING_VARIABLES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HUGGINGFACE_ASSETS_CACHE",
                         "HF_TOKEN_PATH", "HF_XET_CACHE", "HUGGINGFACE_CO_STAGING", "TRANSFORMERS_OFFLINE")
# Modules that copied a constant at import (`from ..constants import X`): module, name.
_COPIED_CONSTANTS = (("huggingface_hub.utils._cache_manager", "HF_HUB_CACHE"),
                     ("huggingface_hub.utils._cache_assets", "HF_ASSETS_CACHE"),
                     ("huggingface_hub.utils._git_credential", "ENDPOINT"))


def use_in_process(hub: FakeHub, monkeypatch: Any, home: Path) -> None:
    """Point this process's huggingface_hub at `hub`, with HF_HOME (and XDG_CACHE_HOME) under `home`, for one
    test (`monkeypatch` is pytest's: everything is undone after the test).

    huggingface_hub reads its environment once, at import, into `huggingface_hub.constants` (ENDPOINT, the URL
    template built from it, HF_HOME and every cache and token path under it, the timeouts, offline mode, ...),
    and a module-level `HfApi` (behind `huggingface_hub.model_info` and the other module functions) keeps the
    endpoint it was made with. Setting HF_ENDPOINT afterwards changes nothing. So: set the variables of
    `hub.env()` and HF_HOME, run constants.py again into a scratch module under that environment, and patch
    every constant whose value differs (the same derivation as a fresh import, with none to list by hand),
    then the module-level HfApi's endpoint and the few constants other modules copied at import, and close
    the library's shared HTTP client so no connection pooled for another server is reused. A child process
    given `hub.env()` needs none of this (tests/test_fake_hub.py checks both ways)."""
    import importlib.util

    import huggingface_hub.constants as constants
    from huggingface_hub import hf_api
    from huggingface_hub.utils import close_session

    for name in _OVERRIDING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(Path(home) / "hf_home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(Path(home) / "xdg_cache"))
    for name, value in hub.env().items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.find_spec("huggingface_hub.constants")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    for name, value in vars(fresh).items():
        if name.isupper() and not callable(value) and getattr(constants, name, None) != value:
            monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(hf_api.api, "endpoint", constants.ENDPOINT)
    for module_name, name in _COPIED_CONSTANTS:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, name):
            monkeypatch.setattr(module, name, getattr(constants, name))
    close_session()
