"""A local stand-in for the Hugging Face Hub's HTTP API, for offline tests. It is NOT the Hub.

A small threaded HTTP server (stdlib ``http.server``, bound to 127.0.0.1 on a free port) that
answers the requests the real ``huggingface_hub`` 2.4 client makes for ``create_repo``,
``create_commit`` / ``upload_folder``, ``create_tag``, ``repo_info`` and ``whoami``, so that code
pushing models with ``HfApi(endpoint=standin.url, token=...)`` can be tested without a network.
It keeps everything in memory and records what arrived (repos, commits with the bytes of every
file, tags, requests) for tests to assert on.

Endpoints (``{t}`` is ``model``/``dataset``/``space``, ``{prefix}`` is ``""``/``datasets/``/
``spaces/``, ``{repo}`` is ``namespace/name``):

- ``POST /api/repos/create``: ``{"name", "organization", "visibility"?, "type"?}``; 409 if it
  exists. A new repo gets an initial commit holding ``.gitattributes``, as on the Hub.
- ``POST /api/validate-yaml``: parses the README's YAML front matter; 400 with ``errors`` if it is
  not a mapping.
- ``GET /api/whoami-v2``: the token's user.
- ``GET /api/{t}s/{repo}`` and ``GET /api/{t}s/{repo}/revision/{rev}``: repo info (``sha``,
  ``private``, ``siblings``, ``tags``).
- ``POST /api/{t}s/{repo}/preupload/{rev}``: upload mode per file: ``lfs`` for the usual binary
  patterns (``*.safetensors``, ``*.bin``, ...), files over 10 MiB and binary samples, else
  ``regular``; ``oid`` of the file already in the tree (git blob sha1, or sha256 for LFS files).
- ``POST /{prefix}{repo}.git/info/lfs/objects/batch``: the git-LFS batch API (``basic`` transfer):
  an upload action pointing at ``PUT /standin-lfs/{ticket}`` (a one-time URL, no auth header, like
  a presigned S3 URL) and a ``verify`` action; objects already stored need no upload.
- ``PUT /standin-lfs/{ticket}``: stores the object after checking its sha256 and size.
- ``POST /{prefix}{repo}.git/info/lfs/objects/verify``: 200 when the object is stored.
- ``POST /api/{t}s/{repo}/commit/{rev}``: the NDJSON commit (``header``, ``file`` base64,
  ``lfsFile`` by oid, ``deletedFile``, ``deletedFolder``) on ``main``; 412 on a stale
  ``parentCommit``.
- ``POST /api/{t}s/{repo}/tag/{rev}``: ``{"tag", "message"?}``; 409 if the tag exists.
- ``/api/{t}s/{repo}/xet-write-token/{rev}``: 501. The stand-in does not speak Xet: a client with
  ``hf_xet`` installed must run with ``HF_HUB_DISABLE_XET=1`` so that it uses the LFS batch API.

Auth: every request may carry ``Authorization: Bearer <token>``; an unknown token gets 401
(``Invalid credentials in Authorization header``), writes need a token whose role is ``write``
(else 403), and private repos are invisible without a valid token (401, ``RepoNotFound``).
Anything else gets 404 and is recorded in :attr:`HubStandIn.unhandled`.

Example::

    with HubStandIn(tokens={"hf_test": "write"}) as hub:
        HfApi(endpoint=hub.url, token="hf_test").create_repo("org/model", private=True)
        assert hub.repo("org/model").private
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

#: Files the Hub's default ``.gitattributes`` sends to LFS (the common subset).
LFS_PATTERNS = (
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "*.tar",
    "*.tflite",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
)
#: Files larger than this must go through LFS on the Hub.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
REPO_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
PLURALS = {"models": "model", "datasets": "dataset", "spaces": "space"}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a regular file (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """An ``http://127.0.0.1:<port>`` URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class StandInCommit:
    """One commit: its message, and the full bytes of every file it added or changed."""

    oid: str
    message: str
    description: str
    parent: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    lfs_files: set[str] = field(default_factory=set)
    deleted: list[str] = field(default_factory=list)


@dataclass
class StandInRepo:
    """One repo: its type and visibility, its commits on ``main``, its tree and its tags."""

    repo_type: str
    repo_id: str
    private: bool
    commits: list[StandInCommit] = field(default_factory=list)
    tree: dict[str, bytes] = field(default_factory=dict)
    lfs_paths: set[str] = field(default_factory=set)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    tag_messages: dict[str, str] = field(default_factory=dict)

    @property
    def head(self) -> str:
        """The oid of ``main``'s last commit."""
        return self.commits[-1].oid

    @property
    def pushed_commits(self) -> list[StandInCommit]:
        """The commits after the initial one the stand-in made when creating the repo."""
        return self.commits[1:]

    def commit_by_oid(self, oid: str) -> StandInCommit:
        return next(c for c in self.commits if c.oid == oid)

    def resolve(self, revision: str) -> str | None:
        """The commit oid of a branch (``main``), tag or commit oid; None if unknown."""
        if revision == "main":
            return self.head
        if revision in self.tags:
            return self.tags[revision]
        if any(c.oid == revision for c in self.commits):
            return revision
        return None

    def file_oid(self, path: str) -> str | None:
        if path not in self.tree:
            return None
        data = self.tree[path]
        if path in self.lfs_paths:
            return hashlib.sha256(data).hexdigest()
        return git_blob_sha1(data)


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int


class _HttpError(Exception):
    def __init__(
        self, status: int, message: str, *, code: str | None = None, body: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.body = body


class HubStandIn:
    """A local stand-in for the Hugging Face Hub (not the Hub): start it, point a client at
    :attr:`url`, then inspect :attr:`repos`, :attr:`requests` and :attr:`unhandled`.

    :param tokens: accepted tokens and their role (``"write"`` or ``"read"``).
    :param user: the user name every accepted token belongs to.
    """

    def __init__(self, tokens: dict[str, str] | None = None, *, user: str = "standin-user") -> None:
        self.tokens = dict(tokens or {})
        self.user = user
        self.repos: dict[tuple[str, str], StandInRepo] = {}
        self.requests: list[RequestRecord] = []
        self.unhandled: list[str] = []
        self.yaml_validations: list[str] = []
        self._tickets: dict[str, tuple[tuple[str, str], str, int]] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: pass it as ``HF_ENDPOINT`` / ``HfApi(endpoint=...)``."""
        if self._server is None:
            raise RuntimeError("the Hub stand-in is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubStandIn:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"standin": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> HubStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection ---------------------------------------------------------------------------
    def repo(self, repo_id: str, repo_type: str = "model") -> StandInRepo:
        """The recorded repo (KeyError if it was never created)."""
        return self.repos[(repo_type, repo_id)]

    def has_repo(self, repo_id: str, repo_type: str = "model") -> bool:
        return (repo_type, repo_id) in self.repos

    def repo_url(self, repo_id: str, repo_type: str = "model") -> str:
        return f"{self.url}/{REPO_PREFIXES[repo_type]}{repo_id}"

    # --- request handling (called from handler threads) ---------------------------------------
    def _role(self, headers: Any) -> str | None:
        """The role of the request's token; None without one; raises 401 for an unknown one."""
        auth = headers.get("Authorization") or ""
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            raise _HttpError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def _need_write(self, role: str | None, what: str) -> None:
        if role is None:
            raise _HttpError(401, f"You must be authenticated to {what}")
        if role != "write":
            raise _HttpError(
                403, f"You don't have the rights to {what}: the token has read access only"
            )

    def _get_repo(self, repo_type: str, repo_id: str, role: str | None) -> StandInRepo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and role is None):
            status = 401 if role is None else 404
            raise _HttpError(status, "Repository not found", code="RepoNotFound")
        return repo

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        """Route one request; returns (status, JSON body or bytes)."""
        path = urlsplit(raw_path).path
        query = urlsplit(raw_path).query
        with self._lock:
            if method == "PUT" and path.startswith("/standin-lfs/"):
                return self._lfs_put(path.rsplit("/", 1)[-1], body)
            role = self._role(headers)
            parts = [unquote(p) for p in path.strip("/").split("/")]
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo(role, _json(body))
            if method == "POST" and path == "/api/validate-yaml":
                return self._validate_yaml(_json(body))
            if method == "GET" and path == "/api/whoami-v2":
                if role is None:
                    raise _HttpError(401, "Invalid credentials in Authorization header")
                return 200, {
                    "type": "user",
                    "name": self.user,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"role": role}},
                }
            if len(parts) >= 4 and parts[0] == "api" and parts[1] in PLURALS:
                repo_type = PLURALS[parts[1]]
                repo_id = f"{parts[2]}/{parts[3]}"
                rest = parts[4:]
                if method == "GET" and not rest:
                    return self._repo_info(repo_type, repo_id, "main", role)
                if len(rest) >= 2:
                    action, revision = rest[0], "/".join(rest[1:])
                    if method == "GET" and action == "revision":
                        return self._repo_info(repo_type, repo_id, revision, role)
                    if action.startswith("xet-"):
                        raise _HttpError(
                            501,
                            "this local Hub stand-in does not implement Xet storage: "
                            "set HF_HUB_DISABLE_XET=1 so the client uses the LFS batch API",
                        )
                    if method == "POST" and action == "preupload":
                        return self._preupload(repo_type, repo_id, role, _json(body))
                    if method == "POST" and action == "commit":
                        if "create_pr=1" in query:
                            raise _HttpError(400, "pull requests are not supported here")
                        return self._commit(repo_type, repo_id, revision, role, body)
                    if method == "POST" and action == "tag":
                        return self._tag(repo_type, repo_id, revision, role, _json(body))
            if method == "POST" and ".git/info/lfs/objects/" in path:
                head, _, action = path.strip("/").partition(".git/info/lfs/objects/")
                repo_type, repo_id = "model", head
                for kind, prefix in REPO_PREFIXES.items():
                    if prefix and head.startswith(prefix):
                        repo_type, repo_id = kind, head[len(prefix) :]
                if action == "batch":
                    return self._lfs_batch(repo_type, repo_id, role, _json(body))
                if action == "verify":
                    return self._lfs_verify(repo_type, repo_id, role, _json(body))
            self.unhandled.append(f"{method} {path}")
            raise _HttpError(404, f"the Hub stand-in does not implement {method} {path}")

    def _create_repo(self, role: str | None, payload: dict[str, Any]) -> tuple[int, Any]:
        self._need_write(role, "create a repo")
        name, org = payload.get("name"), payload.get("organization") or self.user
        if not name:
            raise _HttpError(400, "name is required")
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_PREFIXES:
            raise _HttpError(400, f"unknown repo type {repo_type!r}")
        repo_id = f"{org}/{name}"
        url = f"{self.url}/{REPO_PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            raise _HttpError(409, f"You already created this {repo_type} repo", body={"url": url})
        private = payload.get("visibility", "public") == "private" or bool(payload.get("private"))
        repo = StandInRepo(repo_type=repo_type, repo_id=repo_id, private=private)
        attributes = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS)
        self._apply_commit(
            repo, "initial commit", "", {".gitattributes": attributes.encode()}, set(), []
        )
        self.repos[(repo_type, repo_id)] = repo
        return 200, {"url": url, "name": repo_id, "id": secrets.token_hex(12)}

    def _validate_yaml(self, payload: dict[str, Any]) -> tuple[int, Any]:
        content = str(payload.get("content") or "")
        self.yaml_validations.append(content)
        if not content.startswith("---"):
            return 200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]}
        end = content.find("\n---", 3)
        try:
            meta = yaml.safe_load(content[3:end]) if end > 0 else None
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": f"invalid YAML: {exc}"}]}
        errors = []
        if not isinstance(meta, dict):
            errors.append({"message": "the metadata is not a YAML mapping"})
        elif "model-index" in meta and not isinstance(meta["model-index"], list):
            errors.append({"message": '"model-index" must be a list'})
        if errors:
            return 400, {"errors": errors, "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def _repo_info(
        self, repo_type: str, repo_id: str, revision: str, role: str | None
    ) -> tuple[int, Any]:
        repo = self._get_repo(repo_type, repo_id, role)
        oid = repo.resolve(revision)
        if oid is None:
            raise _HttpError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return 200, {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": oid,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "lastModified": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "tags": [],
            "siblings": [{"rfilename": p} for p in sorted(repo.tree)],
        }

    def _is_lfs(self, path: str, size: int, sample: bytes) -> bool:
        name = path.rsplit("/", 1)[-1]
        return (
            any(fnmatch.fnmatch(name, pattern) for pattern in LFS_PATTERNS)
            or size > LFS_SIZE_THRESHOLD
            or b"\x00" in sample
        )

    def _preupload(
        self, repo_type: str, repo_id: str, role: str | None, payload: dict[str, Any]
    ) -> tuple[int, Any]:
        self._need_write(role, "upload files")
        repo = self._get_repo(repo_type, repo_id, role)
        files = []
        for item in payload.get("files", []):
            sample = base64.b64decode(item.get("sample") or "")
            lfs = self._is_lfs(item["path"], int(item.get("size", 0)), sample)
            files.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": repo.file_oid(item["path"]),
                }
            )
        return 200, {"files": files, "commitOid": repo.head}

    def _lfs_batch(
        self, repo_type: str, repo_id: str, role: str | None, payload: dict[str, Any]
    ) -> tuple[int, Any]:
        self._need_write(role, "upload LFS files")
        repo = self._get_repo(repo_type, repo_id, role)
        if payload.get("operation") != "upload":
            raise _HttpError(400, "only the upload operation is supported")
        if "basic" not in (payload.get("transfers") or ["basic"]):
            raise _HttpError(400, "only the basic transfer is supported")
        verify = f"{self.url}/{REPO_PREFIXES[repo_type]}{repo_id}.git/info/lfs/objects/verify"
        objects = []
        for obj in payload.get("objects", []):
            oid, size = str(obj["oid"]), int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in repo.lfs_objects:
                ticket = secrets.token_urlsafe(16)
                self._tickets[ticket] = ((repo_type, repo_id), oid, size)
                entry["actions"] = {
                    "upload": {"href": f"{self.url}/standin-lfs/{ticket}", "expires_in": 3600},
                    "verify": {"href": verify, "header": {}},
                }
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def _lfs_put(self, ticket: str, body: bytes) -> tuple[int, Any]:
        if ticket not in self._tickets:
            raise _HttpError(403, "unknown or used upload URL")
        key, oid, size = self._tickets.pop(ticket)
        if len(body) != size or hashlib.sha256(body).hexdigest() != oid:
            raise _HttpError(400, "the uploaded bytes do not match the announced oid/size")
        self.repos[key].lfs_objects[oid] = body
        return 200, b""

    def _lfs_verify(
        self, repo_type: str, repo_id: str, role: str | None, payload: dict[str, Any]
    ) -> tuple[int, Any]:
        repo = self._get_repo(repo_type, repo_id, role)
        data = repo.lfs_objects.get(str(payload.get("oid")))
        if data is None or len(data) != int(payload.get("size", -1)):
            raise _HttpError(404, "object not found")
        return 200, {"success": True}

    def _commit(
        self, repo_type: str, repo_id: str, revision: str, role: str | None, body: bytes
    ) -> tuple[int, Any]:
        self._need_write(role, "commit")
        repo = self._get_repo(repo_type, repo_id, role)
        if revision != "main":
            raise _HttpError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        header: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        lfs: set[str] = set()
        deleted: list[str] = []
        for line in body.decode("utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise _HttpError(400, "file content must be base64")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                data = repo.lfs_objects.get(value.get("oid"))
                if data is None:
                    raise _HttpError(
                        422, f"LFS pointer of {value.get('path')} points to no uploaded object"
                    )
                files[value["path"]] = data
                lfs.add(value["path"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                raise _HttpError(400, f"unknown commit operation {key!r}")
        if not header.get("summary"):
            raise _HttpError(400, "the commit needs a summary (header.summary)")
        parent = header.get("parentCommit")
        if parent and parent != repo.head:
            raise _HttpError(412, "A commit has happened since: parentCommit is not the head")
        commit = self._apply_commit(
            repo, header["summary"], header.get("description") or "", files, lfs, deleted
        )
        prefix = REPO_PREFIXES[repo_type]
        return 200, {
            "success": True,
            "commitOid": commit.oid,
            "commitUrl": f"{self.url}/{prefix}{repo_id}/commit/{commit.oid}",
            "hookOutput": "",
        }

    def _apply_commit(
        self,
        repo: StandInRepo,
        message: str,
        description: str,
        files: dict[str, bytes],
        lfs: set[str],
        deleted: list[str],
    ) -> StandInCommit:
        parent = repo.commits[-1].oid if repo.commits else None
        digest = hashlib.sha1()
        digest.update((parent or "").encode())
        digest.update(message.encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\x00" + hashlib.sha256(files[path]).digest())
        digest.update(json.dumps(sorted(deleted)).encode())
        digest.update(secrets.token_bytes(8))
        commit = StandInCommit(
            oid=digest.hexdigest(),
            message=message,
            description=description,
            parent=parent,
            files=dict(files),
            lfs_files=set(lfs),
            deleted=list(deleted),
        )
        for path in deleted:
            for existing in [p for p in repo.tree if p == path or p.startswith(path + "/")]:
                repo.tree.pop(existing)
                repo.lfs_paths.discard(existing)
        for path, data in files.items():
            repo.tree[path] = data
            if path in lfs:
                repo.lfs_paths.add(path)
            else:
                repo.lfs_paths.discard(path)
        repo.commits.append(commit)
        return commit

    def _tag(
        self,
        repo_type: str,
        repo_id: str,
        revision: str,
        role: str | None,
        payload: dict[str, Any],
    ) -> tuple[int, Any]:
        self._need_write(role, "create a tag")
        repo = self._get_repo(repo_type, repo_id, role)
        tag = str(payload.get("tag") or "")
        if not tag:
            raise _HttpError(400, "tag is required")
        oid = repo.resolve(revision)
        if oid is None:
            raise _HttpError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        if tag in repo.tags:
            raise _HttpError(409, f"Tag {tag} already exists")
        repo.tags[tag] = oid
        if payload.get("message"):
            repo.tag_messages[tag] = str(payload["message"])
        return 200, {"success": True}


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except json.JSONDecodeError:
        raise _HttpError(400, "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise _HttpError(400, "the request body is not a JSON object")
    return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: HubStandIn

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # requests are recorded in HubStandIn.requests instead

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        body = self._body()
        extra: dict[str, str] = {}
        try:
            status, payload = self.standin.handle(self.command, self.path, self.headers, body)
        except _HttpError as err:
            status = err.status
            payload = {"error": err.message, **(err.body or {})}
            extra["X-Error-Message"] = err.message
            if err.code:
                extra["X-Error-Code"] = err.code
        except Exception as exc:  # a bug in the stand-in: say so instead of hanging the client
            status, payload = 500, {"error": f"Hub stand-in failure: {type(exc).__name__}: {exc}"}
        with self.standin._lock:
            self.standin.requests.append(
                RequestRecord(self.command, urlsplit(self.path).path, status)
            )
        if isinstance(payload, bytes):
            data, ctype = payload, "application/octet-stream"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-Id", secrets.token_hex(8))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve
