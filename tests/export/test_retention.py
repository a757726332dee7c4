import os

import pytest

from tfcvr import export


def _version(base, version, complete=True):
    os.makedirs(os.path.join(base, str(version)))
    if complete:
        open(os.path.join(base, str(version), "saved_model.pb"), "wb").close()


def test_keeps_the_newest_complete_versions_and_never_touches_others(tmp_path):
    base = str(tmp_path)
    for version in (1, 2, 3, 4):
        _version(base, version)
    _version(base, 5, complete=False)  # being copied in by another process
    os.makedirs(os.path.join(base, ".tmp-6-abc"))  # an export in progress
    assert export.retain_versions(base, 2) == [1, 2]
    assert sorted(os.listdir(base)) == [".tmp-6-abc", "3", "4", "5"]
    # Protected versions (just written, or pinned by a label) survive even when old.
    _version(base, 7)
    assert export.retain_versions(base, 1, protect=(3,)) == [4]
    assert sorted(os.listdir(base)) == [".tmp-6-abc", "3", "5", "7"]


def test_the_newest_version_is_always_kept(tmp_path):
    base = str(tmp_path)
    _version(base, 10)
    assert export.retain_versions(base, 1) == [] and os.listdir(base) == ["10"]
    with pytest.raises(ValueError, match="must be at least 1"):
        export.retain_versions(base, 0)
    assert export.retain_versions(str(tmp_path / "missing"), 3) == []
