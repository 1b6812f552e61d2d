"""The data download: resumed after a broken connection, corrupt or hostile zips refused, the
pairs checked by the kit's loader. Everything is served from 127.0.0.1 by a thread."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.commands import download
from helpers.paths import ISIC2016_FOLDERS
from helpers.synthetic import write_synthetic_isic2016


class _Server:
    """Serves ``files`` (name -> bytes) with Range support; ``cut`` names files whose first
    response stops half way."""

    def __init__(self, files: dict[str, bytes], cut: set[str] = frozenset()) -> None:
        self.files, self.cut, self.ranges = files, set(cut), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.rsplit("/", 1)[-1]
                if name not in server.files:
                    self.send_error(404)
                    return
                data, start = server.files[name], 0
                if self.headers.get("Range"):
                    server.ranges.append((name, self.headers["Range"]))
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(data):  # nothing left to send: as real servers answer
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        self.close_connection = True
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in server.cut:
                    server.cut.discard(name)
                    body = body[: len(body) // 2]
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/2016/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _zip_folder(folder: Path) -> bytes:
    target = folder.parent / f"{folder.name}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{folder.name}/", "")
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{folder.name}/{path.name}")
    return target.read_bytes()


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The four archives, built from a small SYNTHETIC set in the official layout."""
    root = write_synthetic_isic2016(tmp_path_factory.mktemp("source"), n_train=6, n_test=3)
    folders = [f for pair in ISIC2016_FOLDERS.values() for f in pair]
    return {f"{name}.zip": _zip_folder(root / name) for name in folders}


def _archives(zips: dict[str, bytes]) -> tuple[download.Archive, ...]:
    return tuple(download.Archive(name, len(data)) for name, data in zips.items())


@pytest.fixture
def server(zips: dict[str, bytes]) -> Iterator[_Server]:
    with _Server(dict(zips)) as running:
        yield running


def test_a_clean_download_unpacks_and_pairs_everything(server, zips, tmp_path, capsys) -> None:
    counts = download.download(tmp_path, server.url, _archives(zips), timeout=5)
    assert counts == {"train": 6, "test": 3}
    out = capsys.readouterr().out
    assert "train: 6 image/mask pairs (the official data has 900)" in out
    assert (tmp_path / "ISBI2016_ISIC_Part1_Test_GroundTruth").is_dir()
    # a second run downloads nothing
    server.files.clear()
    assert download.download(tmp_path, server.url, _archives(zips), timeout=5) == counts
    assert "already downloaded" in capsys.readouterr().out


def test_an_interrupted_download_resumes_where_it_stopped(zips, tmp_path) -> None:
    name = "ISBI2016_ISIC_Part1_Training_Data.zip"
    with _Server(dict(zips), cut={name}) as server:
        with pytest.raises(download.DownloadError, match="Run the command again"):
            download.download(tmp_path, server.url, _archives(zips), timeout=5)
        part = tmp_path / f"{name}.part"
        assert 0 < part.stat().st_size < len(zips[name])
        assert download.download(tmp_path, server.url, _archives(zips),
                                 timeout=5)["train"] == 6
    assert server.ranges == [(name, f"bytes={len(zips[name]) // 2}-")]
    assert (tmp_path / name).read_bytes() == zips[name] and not part.exists()


def test_a_complete_part_file_is_finished_although_the_size_is_unknown(zips, tmp_path
                                                                        ) -> None:
    # the connection broke after the last byte, before the .part file was renamed
    name = "ISBI2016_ISIC_Part1_Training_Data.zip"
    (tmp_path / f"{name}.part").write_bytes(zips[name])
    unknown_sizes = tuple(download.Archive(archive) for archive in zips)  # as in ARCHIVES
    with _Server(dict(zips)) as server:
        assert download.download(tmp_path, server.url, unknown_sizes, timeout=5)["train"] == 6
    assert server.ranges == [(name, f"bytes={len(zips[name])}-")]  # answered with 416
    assert (tmp_path / name).read_bytes() == zips[name]


def test_a_corrupt_zip_is_refused_by_name(zips, tmp_path) -> None:
    name = "ISBI2016_ISIC_Part1_Test_Data.zip"
    broken = bytearray(zips[name])
    broken[len(broken) // 3] ^= 0xFF  # inside a member's compressed data
    with _Server({**zips, name: bytes(broken)}) as server, \
            pytest.raises(download.DownloadError, match=rf"{name}.*(damaged|not a valid zip)"):
        download.download(tmp_path, server.url, _archives({**zips, name: bytes(broken)}),
                          timeout=5)


@pytest.mark.parametrize("member", ["../escaped.txt", "/tmp/absolute.txt", "a/../../up.txt"])
def test_a_zip_member_outside_the_target_is_refused(tmp_path, member: str) -> None:
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("ok/first.txt", "fine")
        archive.writestr(member, "escaped")
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(download.DownloadError, match=r"hostile\.zip: member .* nothing was"):
        download.safe_extract(hostile, target)
    assert list(target.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()


def test_a_symbolic_link_in_a_zip_is_refused(tmp_path) -> None:
    hostile = tmp_path / "link.zip"
    info = zipfile.ZipInfo("data/link")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(download.DownloadError, match="symbolic link"):
        download.safe_extract(hostile, tmp_path / "target")


def test_offline_prints_the_manual_steps_and_exits_1(tmp_path, monkeypatch, capsys) -> None:
    with _Server({}) as server:
        url = server.url
    # the server is closed: nothing listens at that address any more
    assert download.main(["--to", str(tmp_path / "d"), "--base-url", url]) == 1
    error = capsys.readouterr().err
    assert "cannot reach the archive" in error and "ISBI2016_ISIC_Part1_Test_Data.zip" in error
    assert download.PAGE in error
    shutil.rmtree(tmp_path / "d", ignore_errors=True)


def test_a_broken_connection_says_how_many_bytes_arrived(zips, tmp_path) -> None:
    name = "ISBI2016_ISIC_Part1_Training_Data.zip"
    with _Server(dict(zips), cut={name}) as server, \
            pytest.raises(download.DownloadError) as raised:
        download.download(tmp_path, server.url, _archives(zips), timeout=5)
    half = len(zips[name]) // 2
    assert f"; {half:,} of {len(zips[name]):,} bytes have arrived and are kept" \
        in str(raised.value)


def _zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_zip_that_expands_a_thousandfold_is_refused_before_decompressing(tmp_path,
                                                                          monkeypatch) -> None:
    bomb = _zip_with(tmp_path / "bomb.zip", {"data/zeros.bin": bytes(20 * 2**20)})
    monkeypatch.setattr(download.zipfile.ZipFile, "testzip", lambda self: pytest.fail(
        "decompressed before the sizes were checked"))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(download.DownloadError, match=r"bomb\.zip would unpack to 20,971,520 "
                                                     r"bytes, \d[\d,]* times its own size \(at "
                                                     r"most 20 allowed"):
        download.check_zip(bomb, target)
    assert list(target.iterdir()) == []


def test_a_zip_with_too_many_members_is_refused(tmp_path, monkeypatch) -> None:
    many = _zip_with(tmp_path / "many.zip", {f"d/{i}.txt": b"x" for i in range(12)})
    monkeypatch.setattr(download, "MAX_MEMBERS", 10)
    with pytest.raises(download.DownloadError, match=r"many\.zip has 12 members, more than the "
                                                     "10 a data zip has; nothing was unpacked"):
        download.check_zip(many, tmp_path)


def test_a_zip_larger_than_the_free_space_or_its_expected_size_is_refused(tmp_path,
                                                                         monkeypatch) -> None:
    data = _zip_with(tmp_path / "data.zip", {"d/a.bin": bytes(range(256)) * 4})
    with pytest.raises(download.DownloadError, match=r"data\.zip unpacks to 1,024 bytes, not "
                                                     "the 1,000 expected"):
        download.check_zip(data, tmp_path, unpacked=1000)
    download.check_zip(data, tmp_path, unpacked=1024)
    usage = download.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(download.shutil, "disk_usage",
                        lambda path: usage._replace(free=100 * 2**20))
    with pytest.raises(download.DownloadError, match=r"data\.zip unpacks to 0\.0 MiB, but .* has "
                                                     r"100\.0 MiB free \(and 256 MiB should stay "
                                                     "free\\)"):
        download.check_zip(data, tmp_path)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers with ``self.server.answer(handler)``; logs nothing."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.answer(self)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def _serving(answer) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.answer = answer
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _redirect_to(location: str):
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path == "/moved/data.zip":
            handler.send_response(200)
            handler.send_header("Content-Length", "4")
            handler.end_headers()
            handler.wfile.write(b"data")
            return
        handler.send_response(302)
        handler.send_header("Location", location.format(port=handler.server.server_address[1]))
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def test_a_redirect_to_another_host_is_not_followed(tmp_path) -> None:
    with _serving(_redirect_to("http://localhost:{port}/moved/data.zip")) as url, \
            pytest.raises(download.DownloadError, match=r"redirects to another host or scheme "
                                                        r"\('http://localhost:\d+/moved/data"
                                                        r"\.zip'\); the kit does not follow it"):
        download.fetch(f"{url}/data.zip", tmp_path / "data.zip", None, timeout=5)
    assert not (tmp_path / "data.zip").exists()


def test_a_redirect_within_the_host_is_followed(tmp_path) -> None:
    with _serving(_redirect_to("/moved/data.zip")) as url:
        download.fetch(f"{url}/data.zip", tmp_path / "data.zip", None, timeout=5)
    assert (tmp_path / "data.zip").read_bytes() == b"data"


def _trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    try:
        for _ in range(1000):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass  # the client gave up


def test_a_trickling_server_is_left_with_what_arrived_kept(tmp_path) -> None:
    started = time.monotonic()
    with _serving(_trickle) as url, pytest.raises(
            download.DownloadError, match=r"only \d+ bytes came in the last 1 s \(the minimum "
                                          r"is 1,000 bytes a second\); \d+ of 1,000 bytes have "
                                          "arrived and are kept"):
        download.fetch(f"{url}/data.zip", tmp_path / "data.zip", None, timeout=5,
                       min_rate=1000, window=1)
    assert time.monotonic() - started < 10
    assert 0 < (tmp_path / "data.zip.part").stat().st_size < 1000


def test_a_download_past_its_deadline_stops(tmp_path) -> None:
    with _serving(_trickle) as url, pytest.raises(
            download.DownloadError, match=r"the download took longer than 1 s; \d+ of 1,000"):
        download.fetch(f"{url}/data.zip", tmp_path / "data.zip", None, timeout=5,
                       min_rate=1, window=100, deadline=1)


def test_a_full_disk_while_downloading_is_not_called_a_broken_connection(tmp_path,
                                                                         monkeypatch) -> None:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "4")
        handler.end_headers()
        handler.wfile.write(b"data")

    real_open = open

    class Full:
        def __init__(self, handle) -> None:
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(download, "open", lambda *a, **k: Full(real_open(*a, **k)),
                        raising=False)
    with _serving(answer) as url, pytest.raises(
            download.DownloadError, match=r"cannot write .*data\.zip\.part \(No space left on "
                                          r"device\); 0 of 4 bytes have arrived"):
        download.fetch(f"{url}/data.zip", tmp_path / "data.zip", None, timeout=5)


def test_a_redirect_to_another_port_is_not_followed(tmp_path) -> None:
    with _serving(_redirect_to("http://127.0.0.1:9/moved/data.zip")) as url, \
            pytest.raises(download.DownloadError, match="redirects to another host or scheme"):
        download.fetch(f"{url}/data.zip", tmp_path / "data.zip", None, timeout=5)


def test_the_member_count_is_read_from_the_zips_end_before_zipfile_lists_them(
        tmp_path, monkeypatch) -> None:
    many = _zip_with(tmp_path / "many.zip", {f"d/{i}.txt": b"" for i in range(70_000)})
    assert download.declared_members(many) == 70_000  # past 65,535: the zip64 record
    monkeypatch.setattr(download.zipfile, "ZipFile", lambda *a, **k: pytest.fail(
        "zipfile listed the members before the count was checked"))
    with pytest.raises(download.DownloadError, match=r"many\.zip has 70,000 members"):
        download.check_zip(many, tmp_path)
