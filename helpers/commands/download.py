"""Fetch the official ISIC 2016 Part 1 data for the user, safely and resumably.

    python -m helpers download --to data/isic2016

The four zips are large and the archive is far away, so a broken connection must not cost the
whole download: each zip is written to ``<name>.zip.part`` and continued with an HTTP Range
request. Redirects are followed only within the archive's own host, and a download slower
than ``MIN_RATE`` over ``RATE_WINDOW`` seconds, or longer than ``DEADLINE``, stops saying how
much arrived (the next run continues it).

A finished zip is checked before anything is unpacked: its size, its member count, what its
members unpack to (against the expected total where known, ``MAX_EXPANSION`` times the zip,
and the free space), then ``zipfile.testzip``. Unpacking refuses any member that would land
outside the target folder (absolute paths, ``..``) or is a symbolic link. At the end the
kit's own loader pairs every image with its mask and the counts are printed. Running it twice
downloads nothing again. Without a network it prints the manual steps and exits 1.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import stat
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm.auto import tqdm

from helpers.commands.cli import run_command
from helpers.data import find_pairs
from helpers.errors import DownloadError, Offline, shown
from helpers.isic2016 import isic2016_split
from helpers.system.atomic import atomic_path, write_text
from helpers.system.writable import output_folder

BASE_URL = "https://isic-challenge-data.s3.amazonaws.com/2016/"
PAGE = "https://challenge.isic-archive.com/data/#2016"
CHUNK = 1 << 20
#: Pairs the official data has: 900 training and 379 test images.
OFFICIAL_COUNTS = {"train": 900, "test": 379}

#: Bounds on a download (docs/limits.md). The official zips hold at most about a thousand
#: files of JPEG and PNG, which do not compress further: they unpack to about their own size.
MAX_MEMBERS = 20_000
MAX_EXPANSION = 20  # uncompressed bytes per byte of zip
FREE_SPACE_MARGIN = 256 * 2**20  # left free on the disk after unpacking
MIN_RATE = 10 * 1024  # bytes per second, averaged over RATE_WINDOW seconds
RATE_WINDOW = 120.0
DEADLINE = 6 * 3600.0  # seconds for one zip; the next run continues the .part file


@dataclass(frozen=True)
class Archive:
    """One zip of the challenge archive; ``size`` in bytes when known (else the server's
    Content-Length is the size check)."""

    name: str
    size: int | None = None
    unpacked: int | None = None  # the members' total uncompressed size, when known


#: The four Part 1 zips, downloaded from ``BASE_URL + name``. Their sizes could not be read
#: from the archive when this was written (no network here), so the server's length is used.
ARCHIVES = (
    Archive("ISBI2016_ISIC_Part1_Training_Data.zip"),
    Archive("ISBI2016_ISIC_Part1_Training_GroundTruth.zip"),
    Archive("ISBI2016_ISIC_Part1_Test_Data.zip"),
    Archive("ISBI2016_ISIC_Part1_Test_GroundTruth.zip"),
)


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the host the request was for."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        target = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        source = urllib.parse.urlsplit(req.full_url)
        if (target.scheme, target.hostname, target.port) != \
                (source.scheme, source.hostname, source.port):
            fp.close()
            raise DownloadError(f"{req.full_url}: the server redirects to another host or "
                                f"scheme ({shown(target.geturl())}); the kit does not follow "
                                "it. Download the zips by hand (see --help).")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameHostRedirects)


def fetch(url: str, target: Path, expected: int | None, timeout: float = 60,
          min_rate: float = MIN_RATE, window: float = RATE_WINDOW,
          deadline: float = DEADLINE) -> Path:
    """Download ``url`` to ``target``, continuing ``target.part`` when it exists.

    ``timeout`` bounds each wait for data; fewer than ``min_rate`` bytes a second over
    ``window`` seconds, or more than ``deadline`` seconds in all, stop it too. What arrived
    stays in the ``.part`` file for the next run."""
    part = target.with_name(target.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        # 416: nothing from byte ``done`` on. The .part file is complete if that is the size
        # (ours, or the server's "Content-Range: bytes */SIZE")
        complete = expected if expected is not None else _range_total(error.headers)
        if error.code == 416 and complete is not None and done == complete:
            response, expected = None, complete
        else:
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        raise Offline(f"{url}: {getattr(error, 'reason', error)}") from error
    if response is not None:
        with response:
            if done and response.status != 206:  # the server ignored Range: start again
                done = 0
            length = response.headers.get("Content-Length")
            total = done + int(length) if length is not None else expected
            if expected is not None and total is not None and total != expected:
                raise DownloadError(f"{url}: the server offers {total} bytes, "
                                    f"expected {expected}")
            if total is not None:
                _check_free_space(f"{url} needs", total - done, part.parent)
            with open(part, "ab" if done else "wb") as out, tqdm(
                    total=total, initial=done, unit="B", unit_scale=True,
                    desc=target.name) as bar:
                _receive(url, response, out, bar, done, total, (min_rate, window, deadline),
                         part)
            expected = total if expected is None else expected
    size = part.stat().st_size
    if expected is not None and size != expected:
        raise DownloadError(f"{url}: the server stopped sending; {size:,} of {expected:,} "
                            f"bytes have arrived and are kept in {part}. Run the command "
                            "again to continue.")
    os.replace(part, target)
    return target


def _receive(url: str, response: http.client.HTTPResponse, out: BinaryIO, bar: tqdm,
             done: int, total: int | None, bounds: tuple[float, float, float],
             part: Path) -> None:
    """Copy ``response`` to ``out`` (``part``, which holds ``done`` bytes already). A broken
    connection, a rate under the minimum over a window,
    the deadline or a full disk raise :class:`DownloadError` saying how many bytes are
    kept."""
    min_rate, window, deadline = bounds
    arrived = done
    started = window_start = time.monotonic()
    window_bytes = arrived

    def stop(why: str) -> DownloadError:
        of = f" of {total:,}" if total is not None else ""
        return DownloadError(f"{url}: {why}; {arrived:,}{of} bytes have arrived and are kept. "
                             "Run the command again to continue.")

    try:
        while chunk := response.read1(CHUNK):  # whatever has come, not a full CHUNK
            try:
                out.write(chunk)
            except OSError as error:  # the disk, not the network
                raise stop(f"cannot write {part} ({error.strerror})") from error
            arrived += len(chunk)
            bar.update(len(chunk))
            now = time.monotonic()
            if now - started > deadline:
                raise stop(f"the download took longer than {deadline:,.0f} s")
            if now - window_start >= window:
                if arrived - window_bytes < min_rate * (now - window_start):
                    raise stop(f"only {arrived - window_bytes:,} bytes came in the last "
                               f"{now - window_start:.0f} s (the minimum is {min_rate:,.0f} "
                               "bytes a second)")
                window_start, window_bytes = now, arrived
    except (OSError, http.client.HTTPException) as error:
        raise stop(f"the connection broke ({type(error).__name__}: {shown(str(error))})"
                   ) from error


def _range_total(headers) -> int | None:
    """The full size from a ``Content-Range: bytes */SIZE`` header, if there is one."""
    found = re.fullmatch(r"bytes \*/(\d+)", (headers or {}).get("Content-Range", "").strip())
    return int(found[1]) if found else None


def declared_members(path: Path) -> int | None:
    """How many members the zip's end record declares (the zip64 record's count where the
    plain one is full), read from the file's end before zipfile lists them all; None if no
    end record is found (zipfile then says what is wrong)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        tail_start = max(0, size - (1 << 16) - 22)  # the record and its longest comment
        handle.seek(tail_start)
        tail = handle.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        return None
    count = struct.unpack_from("<H", tail, end + 10)[0]
    locator = end - 20  # the zip64 end record's locator sits just before the end record
    if count == 0xFFFF and locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
        with open(path, "rb") as handle:
            handle.seek(struct.unpack_from("<Q", tail, locator + 8)[0])
            record = handle.read(56)
        if record[:4] == b"PK\x06\x06" and len(record) == 56:
            count = struct.unpack_from("<Q", record, 32)[0]
    return count


def check_zip(path: Path, target: Path, unpacked: int | None = None) -> None:
    """Raise :class:`DownloadError` naming ``path`` when it is not an intact zip, or would
    unpack to too much (:func:`_check_sizes`, before anything is decompressed)."""
    try:
        _check_member_count(path, declared_members(path))  # before zipfile lists them all
        with zipfile.ZipFile(path) as archive:
            _check_sizes(path, archive.infolist(), target, unpacked)
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise DownloadError(f"{path} is not a valid zip ({error}); delete it and run the "
                            "command again") from error
    if broken is not None:
        raise DownloadError(f"{path} is damaged (member {broken} fails its CRC check); delete "
                            "it and run the command again")


def _check_member_count(path: Path, count: int | None) -> None:
    if count is not None and count > MAX_MEMBERS:
        raise DownloadError(f"{path} has {count:,} members, more than the {MAX_MEMBERS:,} a "
                            "data zip has; nothing was unpacked")


def _check_sizes(path: Path, members: list[zipfile.ZipInfo], target: Path,
                 unpacked: int | None) -> None:
    """Refuse more than ``MAX_MEMBERS`` members, or members that unpack to other than
    ``unpacked`` bytes (when known), to more than ``MAX_EXPANSION`` times the zip, or to more
    than ``target``'s disk has free."""
    _check_member_count(path, len(members))  # the list itself, if the end record lied
    total, size = sum(member.file_size for member in members), path.stat().st_size
    if unpacked is not None and total != unpacked:
        raise DownloadError(f"{path} unpacks to {total:,} bytes, not the {unpacked:,} "
                            "expected; delete it and run the command again")
    if total > MAX_EXPANSION * max(size, 1):
        raise DownloadError(f"{path} would unpack to {total:,} bytes, {total / size:,.0f} "
                            f"times its own size (at most {MAX_EXPANSION} allowed: images "
                            "do not compress that well); nothing was unpacked")
    _check_free_space(f"{path} unpacks to", total, target)


def _check_free_space(what: str, needed: int, folder: Path) -> None:
    """Refuse to write ``needed`` bytes into ``folder`` unless ``FREE_SPACE_MARGIN`` stays
    free; ``what`` begins the message ("<file> is", "<zip> unpacks to")."""
    free = shutil.disk_usage(folder).free
    if needed + FREE_SPACE_MARGIN > free:
        raise DownloadError(f"{what} {needed / 2**20:,.1f} MiB, but {folder} has "
                            f"{free / 2**20:,.1f} MiB free (and {FREE_SPACE_MARGIN / 2**20:.0f}"
                            " MiB should stay free); free some space and run again")


def safe_extract(path: Path, target: Path) -> None:
    """Unpack ``path`` into ``target``; refuse the whole zip, before writing anything, when a
    member is absolute, climbs out with ``..`` or is a symbolic link."""
    target = target.resolve()
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            is_link = stat.S_ISLNK(member.external_attr >> 16)
            if name.is_absolute() or ".." in name.parts or ":" in member.filename or is_link:
                kind = "a symbolic link" if is_link else "a path outside the target folder"
                raise DownloadError(f"{path}: member {member.filename!r} is {kind}; "
                                    "nothing was unpacked")
            if not (target / name).resolve().is_relative_to(target):
                raise DownloadError(f"{path}: member {member.filename!r} would be written "
                                    "outside the target folder; nothing was unpacked")
        for member in members:
            destination = target / member.filename
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            # one flush to the disk at the end rather than one a file where the system has
            # os.sync: the zip's .done marker is written after it, and without the marker
            # the zip is unpacked again
            with archive.open(member) as source, \
                    atomic_path(destination, durable=not hasattr(os, "sync")) as tmp, \
                    open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
    if hasattr(os, "sync"):
        os.sync()


def check_pairs(root: Path) -> dict[str, int]:
    """Pair the unpacked data with the kit's loader; print and return the counts."""
    counts = {split: len(find_pairs(isic2016_split(root, split))) for split in OFFICIAL_COUNTS}
    for split, count in counts.items():
        note = "" if count == OFFICIAL_COUNTS[split] else \
            f" (the official data has {OFFICIAL_COUNTS[split]})"
        print(f"{split}: {count} image/mask pairs{note}")
    return counts


def download(root: Path, base_url: str = BASE_URL, archives: tuple[Archive, ...] = ARCHIVES,
             timeout: float = 60) -> dict[str, int]:
    """Download, check and unpack every zip of ``archives`` into ``root``; return the pair
    counts. A zip already unpacked (``<name>.done`` beside it) is skipped."""
    output_folder(root, what="data folder").mkdir(parents=True, exist_ok=True)
    for item in archives:
        zip_path = root / item.name
        marker = root / (item.name + ".done")
        if marker.exists():
            print(f"{item.name}: already downloaded and unpacked")
            continue
        if not zip_path.exists():
            fetch(base_url + item.name, zip_path, item.size, timeout)
        if item.size is not None and zip_path.stat().st_size != item.size:
            raise DownloadError(f"{zip_path}: {zip_path.stat().st_size} bytes, expected "
                                f"{item.size}; delete it and run the command again")
        check_zip(zip_path, root, item.unpacked)
        safe_extract(zip_path, root)
        write_text(marker, "unpacked\n")
    return check_pairs(root)


def manual_steps(root: Path) -> str:
    """What to do by hand when the archive cannot be reached."""
    names = "\n".join(f"  {BASE_URL}{item.name}" for item in ARCHIVES)
    return (f"Download the four ISIC 2016 Part 1 zips (see {PAGE}):\n{names}\n"
            f"and unzip each into {root}, so that it holds the four ISBI2016_ISIC_Part1_* "
            "folders; then run this command again to check them.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--to", default="data/isic2016", help="target folder "
                        "(default: data/isic2016; relative to the current folder)")
    parser.add_argument("--base-url", default=BASE_URL, help="where the zips are "
                        "(default: the ISIC challenge archive)")
    return run_command(parser, fetch_isic2016, argv)


def fetch_isic2016(args: argparse.Namespace) -> int:
    root = Path(args.to).resolve()
    try:
        download(root, args.base_url)
    except Offline as error:  # say what to do by hand
        raise Offline(f"cannot reach the archive ({error}).\n{manual_steps(root)}") from error
    print(f"Done: the ISIC 2016 Part 1 data is in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
