"""Object storage: call-outs and outputs at ``s3://bucket/prefix``, through boto3.

The only module that imports boto3. A call-out in a bucket is *staged*: every object under the
prefix is downloaded, verified and kept in the local cache, so intake reads local files exactly
as it does for a folder, and an unchanged call-out costs one listing. An output folder is
rendered locally and *published*: every file uploaded (multipart above a threshold, SHA-256
checksums), ``build.json`` last, so whoever sees ``build.json`` sees a complete set.

Credentials come only from boto3's standard chain (environment, ``~/.aws``, instance roles);
the endpoint of an S3-compatible store from ``--s3-endpoint``, ``$REMIXTV_S3_ENDPOINT`` or
boto3's own ``$AWS_ENDPOINT_URL``. botocore retries throttling, 5xx and dropped connections
with backoff; every other failure (missing bucket, access denied) is a ``UserError`` at once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import mimetypes
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
import botocore.exceptions as bex
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from render.core.cache import Cache, atomic_path, key_of, write_text_atomic
from render.core.errors import UserError

ENDPOINT_ENV = "REMIXTV_S3_ENDPOINT"
MULTIPART_ENV = "REMIXTV_S3_MULTIPART_MIB"
MIB = 1 << 20
MULTIPART_THRESHOLD = 8 * MIB
MIN_PART = 5 * MIB  # S3's smallest part (all but the last)
MAX_ATTEMPTS = 5
LAST = "build.json"
STAGE_WORKERS = 4

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PLAIN_MD5 = re.compile(r"[0-9a-f]{32}")
_TRANSIENT_CODES = {"RequestTimeout", "RequestTimeTooSkewed", "SlowDown", "Throttling", "ThrottlingException",
                    "InternalError", "ServiceUnavailable", "PreconditionFailed"}
_DENIED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
                 "InvalidToken", "ExpiredToken", "AccountProblem", "403"}


class StorageError(UserError):
    """Object storage refused or failed; ``transient`` when trying again later may succeed."""

    def __init__(self, problems: list[str] | str, transient: bool = False):
        super().__init__(problems)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket and a key prefix: ``""`` (the whole bucket) or ending in ``/``."""

    bucket: str
    prefix: str

    def key(self, rel: str) -> str:
        return self.prefix + rel

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.rstrip('/')}"


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """One object as listed: its key, the path below the prefix, and what identifies its bytes."""

    key: str
    rel: str
    size: int
    etag: str
    modified: str


@dataclass(frozen=True, slots=True)
class Published:
    """One uploaded file: its key, size and SHA-256; ``uploaded`` False when the same bytes were already there."""

    key: str
    size: int
    sha256: str
    uploaded: bool


_SCHEME = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(value: object) -> bool:
    """True for a location in an object store, ``s3://bucket/prefix`` (given as text; a Path is
    always local). Any ``scheme://`` counts, so that a store we cannot write (``gs://``) is refused
    by ``parse_uri`` with a message, never taken for a local folder named ``gs:``."""
    return isinstance(value, str) and bool(_SCHEME.match(value))


def parse_uri(uri: str) -> S3Location:
    """``s3://bucket/some/prefix`` -> S3Location; a bad URI is a UserError saying how to write one."""
    m = re.fullmatch(r"s3://([^/]*)(?:/(.*))?", uri.strip(), flags=re.IGNORECASE | re.DOTALL)
    if not m:
        raise StorageError(f"{uri}: not an s3:// URI; write s3://bucket/prefix")
    bucket, rest = m.group(1), (m.group(2) or "").strip("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise StorageError(f"{uri}: {bucket!r} is not a bucket name (3-63 lowercase letters, digits, '.' and '-'); "
                           "write s3://bucket/prefix")
    parts = rest.split("/") if rest else []
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"{uri}: the prefix has an empty, '.' or '..' part; write s3://bucket/folder/subfolder")
    return S3Location(bucket, "".join(p + "/" for p in parts))


def join_uri(uri: str, *parts: str) -> str:
    """``join_uri("s3://b/out", "spec", "preview")`` -> ``"s3://b/out/spec/preview"``."""
    loc = parse_uri(uri)
    return str(parse_uri(f"s3://{loc.bucket}/{loc.prefix}{'/'.join(parts)}"))


def client(endpoint: str | None = None, *, max_attempts: int = MAX_ATTEMPTS):
    """An S3 client: endpoint from the argument, else ``$REMIXTV_S3_ENDPOINT``, else boto3's own
    settings (``$AWS_ENDPOINT_URL``, ``~/.aws/config``, AWS itself); credentials only from boto3's
    standard chain. Standard retry mode retries only throttling, 5xx and connection errors."""
    url = (endpoint or os.environ.get(ENDPOINT_ENV) or "").strip() or None
    if url and not re.match(r"https?://[^/\s]+", url):
        raise StorageError(f"{url}: not an endpoint URL; give --s3-endpoint (or ${ENDPOINT_ENV}) "
                           "like http://127.0.0.1:8333 or https://s3.example.com")
    config = Config(retries={"mode": "standard", "max_attempts": max_attempts}, connect_timeout=10, read_timeout=120,
                    # S3-compatible stores answer path-style requests without per-bucket DNS
                    s3={"addressing_style": "path"} if url else None)
    return boto3.session.Session().client("s3", endpoint_url=url, config=config)


def _explain(exc: BaseException, where: str, doing: str, endpoint: str) -> StorageError:
    """A botocore failure as one line a user can act on, and whether it may pass by itself."""
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, Exception):
        exc = exc.__context__  # boto3 wraps the real ClientError in a message string
    if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError, bex.CredentialRetrievalError)):
        return StorageError(f"{where}: no usable AWS credentials while {doing} ({exc}); set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials")
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", "")).strip()
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code == "NoSuchBucket":
            bucket = error.get("BucketName") or where.removeprefix("s3://").split("/")[0]
            return StorageError(f"{where}: bucket {bucket!r} does not exist at {endpoint}; create it or correct the URI")
        if code in _DENIED_CODES or status == 403:
            return StorageError(f"{where}: access denied while {doing} ({code}: {message or 'forbidden'}); check the "
                                f"credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE) and that they may do this on {where}")
        transient = status >= 500 or code in _TRANSIENT_CODES
        return StorageError(f"{where}: {doing} failed ({code or status}: {message}){'; try again' if transient else ''}",
                            transient=transient)
    if isinstance(exc, bex.SSLError):
        return StorageError(f"{where}: TLS failed talking to {endpoint} while {doing} ({exc}); check the endpoint URL")
    if isinstance(exc, (bex.ConnectionError, bex.HTTPClientError, bex.IncompleteReadError)):
        return StorageError(f"{where}: cannot reach {endpoint} while {doing} ({exc}); check --s3-endpoint / "
                            f"${ENDPOINT_ENV} and the network, then try again", transient=True)
    if isinstance(exc, bex.FlexibleChecksumError):
        return StorageError(f"{where}: the bytes received do not match the stored checksum while {doing} ({exc}); "
                            "try again", transient=True)
    return StorageError(f"{where}: {doing} failed ({type(exc).__name__}: {exc})")


@contextlib.contextmanager
def _translated(s3, where: str, doing: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except (bex.BotoCoreError, bex.ClientError, S3UploadFailedError) as exc:
        raise _explain(exc, where, doing, s3.meta.endpoint_url) from exc


def check_destination(uri: str, *, endpoint: str | None = None, s3=None) -> S3Location:
    """Fail now, not after rendering, when the bucket is missing or the credentials cannot list it."""
    loc = parse_uri(uri)
    s3 = s3 or client(endpoint)
    with _translated(s3, str(loc), "listing the destination"):
        s3.list_objects_v2(Bucket=loc.bucket, Prefix=loc.prefix, MaxKeys=1)
    return loc


def safe_relative(rel: str, where: str = "") -> PurePosixPath:
    """An object's path below the prefix as a relative path, or a StorageError when it would
    land outside the staging folder (absolute, ``..``, ``.``, empty parts, NUL)."""
    parts = rel.split("/")
    if not rel or "\x00" in rel or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"{where}{rel}: refusing object key {rel!r}: it would leave the staging folder (absolute, "
                           "'..', '.' or an empty path part); rename the object")
    return PurePosixPath(*parts)


def list_objects(s3, loc: S3Location) -> list[RemoteObject]:
    """Every object under the prefix (folder markers skipped), each key checked by ``safe_relative``."""
    found: list[RemoteObject] = []
    with _translated(s3, str(loc), "listing the call-out"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix):
            for o in page.get("Contents", []):
                rel = o["Key"][len(loc.prefix):]
                if rel.endswith("/") and o["Size"] == 0:
                    continue  # a "folder" made by a console: nothing to stage
                safe_relative(rel, f"s3://{loc.bucket}/{loc.prefix}")
                found.append(RemoteObject(o["Key"], rel, int(o["Size"]), o["ETag"], o["LastModified"].isoformat()))
    dirs = {str(parent) for o in found for parent in PurePosixPath(o.rel).parents}
    clash = sorted(o.rel for o in found if o.rel in dirs)
    if clash:
        raise StorageError(f"{loc}: {clash[0]!r} is both an object and a folder of other objects; rename one")
    return found


def staging_folder(cache_root: Path | str, uri: str, *, endpoint: str | None = None, s3=None) -> Path:
    """Where ``stage_callout`` keeps a call-out: ``<cache>/staged/<key of endpoint, bucket, prefix>/callout``."""
    loc, s3 = parse_uri(uri), s3 or client(endpoint)
    return Path(cache_root) / "staged" / key_of(s3.meta.endpoint_url, loc.bucket, loc.prefix) / "callout"


def stage_callout(uri: str, cache_root: Path | str, *, endpoint: str | None = None, s3=None,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """Mirror every object under ``uri`` into a folder in the cache and return it.

    Objects whose ETag, size and LastModified match the last staging (and whose local copy is
    untouched) are not downloaded again; objects gone upstream are removed; each download is
    verified (size, plus checksums or the MD5 ETag) and appears atomically.
    """
    loc, s3 = parse_uri(uri), s3 or client(endpoint)
    folder = staging_folder(cache_root, uri, s3=s3)
    manifest_path = folder.parent / "manifest.json"
    remote = list_objects(s3, loc)
    if not remote:
        raise StorageError(f"{loc}: no objects under this prefix; a call-out needs callout.yaml, submissions.csv, "
                           "contributors.csv and its media (check the bucket and prefix)")
    old = _read_manifest(manifest_path)
    fresh = {o.rel: old[o.rel] for o in remote if _unchanged(old.get(o.rel), o, folder / o.rel)}
    todo = [o for o in remote if o.rel not in fresh]
    _prune(folder, {o.rel for o in remote})
    done, failure = dict(fresh), None
    if progress:
        progress(len(done), len(remote))
    try:
        with ThreadPoolExecutor(max_workers=STAGE_WORKERS) as pool:
            futures = [pool.submit(_download, s3, loc, o, folder) for o in todo]
            for future in as_completed(futures):
                try:
                    entry = future.result()
                except StorageError as exc:
                    failure = failure or exc
                    continue
                done[entry["rel"]] = entry
                if progress:
                    progress(len(done), len(remote))
    finally:
        # what was verified stays recorded, so a retry downloads only what is still missing
        write_text_atomic(manifest_path, json.dumps({"schema": "remixtv.staged/1", "uri": str(loc),
                                                     "endpoint": s3.meta.endpoint_url, "objects": done},
                                                    ensure_ascii=False, indent=1))
    if failure:
        raise failure
    return folder


def _read_manifest(path: Path) -> dict[str, dict]:
    try:
        objects = json.loads(path.read_text(encoding="utf-8")).get("objects", {})
        return objects if isinstance(objects, dict) else {}
    except (FileNotFoundError, ValueError, AttributeError):
        return {}


def _unchanged(entry: dict | None, o: RemoteObject, path: Path) -> bool:
    if not entry or (entry.get("etag"), entry.get("size"), entry.get("modified")) != (o.etag, o.size, o.modified):
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == o.size and st.st_mtime_ns == entry.get("mtime_ns")


def _prune(folder: Path, wanted: set[str]) -> None:
    """Remove files that are no longer upstream, and folders left empty."""
    if not folder.is_dir():
        return
    day_ago = time.time() - 86400
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        rel = path.relative_to(folder).as_posix()
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()  # only succeeds when empty
        elif rel not in wanted:
            with contextlib.suppress(OSError):
                if path.name.startswith(".") and path.name.endswith(".part") and path.stat().st_mtime > day_ago:
                    continue  # another process may be downloading into it right now
                path.unlink()


def _download(s3, loc: S3Location, o: RemoteObject, folder: Path, attempts: int = 3) -> dict:
    where = f"s3://{loc.bucket}/{o.key}"
    for attempt in range(1, attempts):
        try:
            with _translated(s3, where, "downloading"):
                return _fetch(s3, loc, o, folder / o.rel, where)
        except StorageError as exc:
            # botocore retries requests, not a body cut off (or garbled) half-way: those we retry
            # here. A refusal (ClientError, e.g. the object changed since listing) is not retried.
            if not exc.transient or isinstance(exc.__cause__, bex.ClientError):
                raise
            time.sleep(2 ** attempt)
    with _translated(s3, where, "downloading"):
        return _fetch(s3, loc, o, folder / o.rel, where)


def _fetch(s3, loc: S3Location, o: RemoteObject, dest: Path, where: str) -> dict:
    # IfMatch: if the object is replaced between listing and download, fail (and re-stage)
    # rather than record new bytes under the old ETag
    resp = s3.get_object(Bucket=loc.bucket, Key=o.key, IfMatch=o.etag, ChecksumMode="ENABLED")
    md5, sha, crc, size = hashlib.md5(), hashlib.sha256(), 0, 0
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            for chunk in resp["Body"].iter_chunks(MIB):
                f.write(chunk)
                md5.update(chunk)
                sha.update(chunk)
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
        verified = _verify(resp, o, size, md5, sha, crc, where)
    return {"rel": o.rel, "key": o.key, "etag": o.etag, "size": o.size, "modified": o.modified,
            "sha256": sha.hexdigest(), "verified": verified, "mtime_ns": dest.stat().st_mtime_ns}


def _verify(resp: dict[str, Any], o: RemoteObject, size: int, md5, sha, crc: int, where: str) -> list[str]:
    """Check the received bytes against everything the store says about them; return what was checked."""
    if size != o.size or size != resp.get("ContentLength", size):
        raise StorageError(f"{where}: received {size} bytes, the store lists {o.size}; try again", transient=True)
    checks, wrong = ["size"], []
    full = {k: v for k, v in ((k, resp.get(k)) for k in ("ChecksumSHA256", "ChecksumCRC32")) if v and "-" not in v}
    if "ChecksumSHA256" in full:
        checks.append("sha256")
        if base64.b64decode(full["ChecksumSHA256"]) != sha.digest():
            wrong.append("SHA-256 checksum")
    if "ChecksumCRC32" in full:
        checks.append("crc32")
        if base64.b64decode(full["ChecksumCRC32"]) != crc.to_bytes(4, "big"):
            wrong.append("CRC32 checksum")
    ours = resp.get("Metadata", {}).get("sha256")
    if ours:
        checks.append("metadata-sha256")
        if ours != sha.hexdigest():
            wrong.append("sha256 metadata")
    etag = o.etag.strip('"')
    # a single-part ETag is the MD5 of the bytes, except under KMS or customer-key encryption
    if (len(checks) == 1 and _PLAIN_MD5.fullmatch(etag) and not resp.get("SSECustomerAlgorithm")
            and not str(resp.get("ServerSideEncryption", "")).startswith("aws:kms")):
        checks.append("etag-md5")
        if etag != md5.hexdigest():
            wrong.append("MD5 ETag")
    if wrong:
        raise StorageError(f"{where}: the bytes received do not match the {', '.join(wrong)}; try again", transient=True)
    return checks


def multipart_threshold() -> int:
    """``$REMIXTV_S3_MULTIPART_MIB`` MiB, else 8 MiB: files this big or bigger go up in parts."""
    raw = os.environ.get(MULTIPART_ENV, "").strip()
    if not raw:
        return MULTIPART_THRESHOLD
    if not raw.isdigit() or int(raw) < 5:
        raise UserError(f"${MULTIPART_ENV}={raw!r}: must be a whole number of MiB, 5 or more (S3's smallest part)")
    return int(raw) * MIB


def outbox(cache_root: Path | str, uri: str, *, endpoint: str | None = None, s3=None) -> Path:
    """The local folder an output bound for ``uri`` is rendered into before ``publish``.

    It lives in the cache so a rebuild with nothing changed skips the join and uploads nothing.
    """
    loc, s3 = parse_uri(uri), s3 or client(endpoint)
    return Path(cache_root) / "outbox" / key_of(s3.meta.endpoint_url, loc.bucket, loc.prefix)


def publish(folder: Path | str, uri: str, *, endpoint: str | None = None, s3=None, threshold: int | None = None,
            last: str = LAST) -> tuple[Published, ...]:
    """Upload every file of ``folder`` (hidden files excepted) under ``uri``; return what is there.

    Small files go first, the episode after them and ``last`` (build.json) at the very end; an
    old ``last`` is withdrawn before anything else changes, so a reader that sees it sees a
    complete set. Files at or above ``threshold`` bytes go up in parts; every part carries a
    SHA-256 checksum the store verifies, and each object carries the file's SHA-256 as metadata,
    which lets a re-publish skip files whose bytes are already there.
    """
    folder, loc, s3 = Path(folder), parse_uri(uri), s3 or client(endpoint)
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    if not files:
        raise UserError(f"{folder}: nothing to publish to {loc}")
    rels = {p: p.relative_to(folder).as_posix() for p in files}
    files.sort(key=lambda p: (rels[p] == last, p.stat().st_size, rels[p]))
    threshold = threshold or multipart_threshold()
    config = TransferConfig(multipart_threshold=threshold, multipart_chunksize=max(threshold, MIN_PART),
                            max_concurrency=4, use_threads=True)
    check_destination(str(loc), s3=s3)
    if last in rels.values():
        with _translated(s3, f"{loc}/{last}", "withdrawing the old build report"):
            s3.delete_object(Bucket=loc.bucket, Key=loc.key(last))
    return tuple(_put(s3, loc, path, rels[path], config, reuse=rels[path] != last) for path in files)


def _put(s3, loc: S3Location, path: Path, rel: str, config: TransferConfig, reuse: bool) -> Published:
    key, size, digest = loc.key(rel), path.stat().st_size, _sha256(path)
    where = f"s3://{loc.bucket}/{key}"
    if reuse:
        there = _head(s3, loc.bucket, key, where)
        if there and there["ContentLength"] == size and there.get("Metadata", {}).get("sha256") == digest:
            return Published(key, size, digest, uploaded=False)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type == "application/json":
        content_type += "; charset=utf-8"
    with _translated(s3, where, "uploading"):
        s3.upload_file(str(path), loc.bucket, key, Config=config,
                       ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": digest},
                                  "ContentType": content_type})
    there = _head(s3, loc.bucket, key, where)
    if not there or there["ContentLength"] != size or there.get("Metadata", {}).get("sha256") != digest:
        raise StorageError(f"{where}: after upload the store holds {there and there['ContentLength']} bytes "
                           f"(expected {size}) or another SHA-256; try again", transient=True)
    return Published(key, size, digest, uploaded=True)


def _head(s3, bucket: str, key: str, where: str) -> dict | None:
    try:
        with _translated(s3, where, "checking the object"):
            return s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except StorageError as exc:
        cause = exc.__cause__
        if isinstance(cause, bex.ClientError) and cause.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return None
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def local_callout(callout: Path | str, cache_root: Path | str | None = None, *, endpoint: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """A call-out as a local folder: a path as it is, an ``s3://`` URI staged into the cache."""
    if not is_uri(callout):
        return Path(callout)
    return stage_callout(str(callout), Cache(Path(cache_root) if cache_root else None).root, endpoint=endpoint,
                         progress=progress)


def _transient_only(task_, run, state) -> bool:
    """Prefect retry condition: retry storage hiccups, never a bad bucket, bad credentials or bad input."""
    exc = state.data  # Prefect hands the raised exception itself to this check
    return isinstance(exc, StorageError) and exc.transient


def __getattr__(name: str):
    """``stage_task`` and ``publish_task``: the two functions as Prefect tasks that retry only
    transient storage failures. Made on first use so quick commands (validate) skip importing Prefect."""
    if name not in ("stage_task", "publish_task"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    fn = stage_callout if name == "stage_task" else publish
    made = task(name=fn.__name__.replace("_", "-"), cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30],
                retry_condition_fn=_transient_only)(fn)
    globals()[name] = made
    return made
