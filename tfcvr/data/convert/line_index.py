"""Random access to the lines of a large file by their first field, holding only byte offsets.

Ali-CCP's common_features file (8.6 GB for train) and AliExpress's user files
are joined to every impression by a key in their first column. Holding their
parsed rows would not fit in memory; holding {key: (byte offset, line number)}
takes about 150 bytes per line (≈110 MB for Ali-CCP's 730k common rows), and
a line is re-read on demand.
"""

from collections.abc import Callable

from tfcvr.data.convert import files
from tfcvr.data.convert.report import ConversionError


class LineIndex:
    """{key: (offset, line number)} of a file, built by one sequential scan.

    Args:
      path: the file (local or gs://).
      key_of: a line (without newline) -> its key (the joined layout's
        `joined_key`, so both runners key lines the same way).

    Raises:
      ConversionError: a key occurs on two lines (the join would be ambiguous).
    """

    def __init__(self, path: str, key_of: Callable[[bytes], bytes]):
        self.path = path
        self.key_of = key_of
        self._offsets: dict[bytes, tuple[int, int]] = {}
        self._file = files.open_binary(path)
        offset, line_number = 0, 0
        # Offsets from tell(), not line lengths: tf.io.gfile (gs://) drops "\r" from the lines it returns.
        while raw := self._file.readline():
            line_number += 1
            key = key_of(raw.rstrip(b"\r\n"))
            if key in self._offsets:
                self._file.close()
                raise ConversionError(
                    f"{path}:{line_number}: key {key.decode(errors='replace')!r} already appeared on line "
                    f"{self._offsets[key][1]}; keys of a joined file must be unique."
                )
            self._offsets[key] = (offset, line_number)
            offset = self._file.tell()

    def __len__(self) -> int:
        return len(self._offsets)

    def __contains__(self, key: bytes) -> bool:
        return key in self._offsets

    def get(self, key: bytes) -> tuple[int, bytes] | None:
        """(line number, line without its newline) of `key`, or None."""
        found = self._offsets.get(key)
        if found is None:
            return None
        offset, line_number = found
        self._file.seek(offset)
        line = self._file.readline().rstrip(b"\r\n")
        if self.key_of(line) != key:  # the file changed under the index, or an offset is wrong: never join blindly
            raise ConversionError(
                f"{self.path}:{line_number}: expected key {key!r} at byte {offset}, read {line[:80]!r}"
            )
        return line_number, line

    def close(self) -> None:
        self._file.close()
