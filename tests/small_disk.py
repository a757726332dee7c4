"""A disk that fills: a size-limited tmpfs whose free space a test sets at will (Linux, root).

`SmallDisk.free(n)` remounts the file system with room for `n` more bytes
(rounded up to pages) than it holds, so the next writes fail with ENOSPC
("No space left on device") wherever the n-th byte falls; `unlimited()`
gives space back. Mounting needs CAP_SYS_ADMIN: where it is refused, the
tests that use it are skipped, saying so.
"""

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

PAGE = 4096
ROOMY = 64 * 2**20


class SmallDisk:
    def __init__(self, path: str):
        self.path = path

    def used(self) -> int:
        """Bytes the file system holds now (whole pages)."""
        stats = os.statvfs(self.path)
        return (stats.f_blocks - stats.f_bfree) * stats.f_frsize

    def free(self, room: int) -> None:
        """Leaves room for `room` more bytes (rounded up to a page)."""
        self._remount(self.used() + -(-room // PAGE) * PAGE)

    def unlimited(self) -> None:
        self._remount(ROOMY)

    def _remount(self, size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={max(size, PAGE)}", self.path], check=True)


@contextlib.contextmanager
def small_disk(path) -> Iterator[SmallDisk]:
    """A tmpfs mounted at `path` for the block (skips the test where mounting is not allowed)."""
    path = str(path)
    os.makedirs(path, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("needs a tmpfs mount: no mount command here")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={ROOMY}", "tmpfs", path], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"needs a tmpfs mount (root with CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", path], check=False)
