#!/usr/bin/env bash
# bazel test offline with Debian's Bazel 4.2.3: the repositories it would download
# (rules_cc, rules_java, remote_coverage_tools, platforms) come from local stand-ins.
# Run from an activated virtual environment: the tests use the Python on PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
exec bazel test \
  --override_repository=rules_cc="$root/third_party/bazel/rules_cc" \
  --override_repository=rules_java="$root/third_party/bazel/rules_java" \
  --override_repository=remote_coverage_tools="$root/third_party/bazel/remote_coverage_tools" \
  --override_repository=platforms=/usr/share/bazel/tools/platforms \
  "${@:-//...}"
