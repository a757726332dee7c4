"""Entry point of the Bazel py_test targets: runs pytest on the files given as arguments."""

import sys

import pytest

# pytest's status when a file's tests were all deselected (-m "not slow" over a file of slow tests): nothing failed.
NO_TESTS_COLLECTED = 5

if __name__ == "__main__":
    status = pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]])
    sys.exit(0 if status == NO_TESTS_COLLECTED else status)
