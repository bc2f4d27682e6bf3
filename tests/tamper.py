"""Hostile archives for the tamper suites (``core/test_tamper.py``, ``edge/test_edge_tamper.py``).

Each case mutates the member list of a good archive: links, devices, traversal paths, duplicates,
unlisted or missing members. Every loader must refuse each with the named ``ArchiveError`` reason.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlship.runtime.bundle import MANIFEST


def members(archive: Path) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """(header, bytes) of every member of an archive."""
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            yield info, tar.extractfile(info).read()


def archive(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """Write ``members`` as a .tar.gz (headers as given: the point is to write what a packer never would)."""
    with tarfile.open(path, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return path


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_member(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def special_member(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


HOSTILE: dict[str, tuple[Callable[[list[Any]], list[Any]], str, str]] = {
    # name: (mutation of the good member list, ArchiveError reason, name in the message)
    "extra_after_manifest": (lambda m: [*m, file_member("extra.bin", b"x")], "unexpected", "extra.bin"),
    "symlink": (lambda m: [*m, link_member("evil", "/etc/passwd", tarfile.SYMTYPE)], "link", "evil"),
    "symlink_over_listed": (lambda m: [m[0], link_member("golden.json", "../x", tarfile.SYMTYPE), *m[1:]], "link",
                            "golden.json"),
    "hardlink": (lambda m: [*m, link_member("copy.onnx", "model.onnx", tarfile.LNKTYPE)], "link", "copy.onnx"),
    "device": (lambda m: [*m, special_member("dev", tarfile.CHRTYPE)], "special_file", "dev"),
    "fifo": (lambda m: [*m, special_member("pipe", tarfile.FIFOTYPE)], "special_file", "pipe"),
    "dotdot": (lambda m: [file_member("../evil.txt", b"x"), *m], "unsafe_path", "../evil.txt"),
    "nested_dotdot": (lambda m: [file_member("card/../../evil.txt", b"x"), *m], "unsafe_path", "card/../../evil.txt"),
    "absolute": (lambda m: [file_member("/tmp/evil.txt", b"x"), *m], "unsafe_path", "/tmp/evil.txt"),
    "duplicate": (lambda m: [*m, file_member("model.onnx", b"other model")], "duplicate", "model.onnx"),
    "no_manifest": (lambda m: [x for x in m if x[0].name != MANIFEST], "no_manifest", MANIFEST),
}
