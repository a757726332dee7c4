"""Random access to the lines of a large file by their first field, holding only byte offsets.

Ali-CCP's common_features file (8.6 GB for train) and AliExpress's user files
are joined to every impression by a key in their first column. Holding their
parsed rows would not fit in memory; holding {key: (byte offset, line number)}
takes about 150 bytes per line (≈110 MB for Ali-CCP's 730k common rows), and
a line is re-read on demand.
"""

from tfcvr.data.convert import files
from tfcvr.data.convert.report import ConversionError


class LineIndex:
    """{first field: (offset, line number)} of a file, built by one sequential scan.

    Args:
      path: the file (local or gs://).
      separator: the byte that ends the first field.
      progress: optional `report.Progress` over the file's bytes.

    Raises:
      ConversionError: a key occurs on two lines (the join would be ambiguous).
    """

    def __init__(self, path: str, separator: bytes = b",", progress=None):
        self.path = path
        self.separator = separator
        self._offsets = {}
        offset = 0
        for line_number, line in files.lines(path, progress):
            end = line.find(separator)
            key = line[:end] if end >= 0 else line.rstrip(b"\r\n")
            if key in self._offsets:
                raise ConversionError(
                    f"{path}:{line_number}: key {key.decode(errors='replace')!r} already appeared on line "
                    f"{self._offsets[key][1]}; keys of a joined file must be unique."
                )
            self._offsets[key] = (offset, line_number)
            offset += len(line)
        self._file = files.open_binary(path)

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
        return line_number, self._file.readline().rstrip(b"\r\n")

    def close(self) -> None:
        self._file.close()
