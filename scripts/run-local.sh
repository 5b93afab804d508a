#!/usr/bin/env bash
# Placeholder until the local stack lands (issue 3).
set -euo pipefail
echo "make run: the local stack is not ready yet" >&2
exit 1
