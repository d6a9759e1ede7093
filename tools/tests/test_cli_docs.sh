#!/usr/bin/env bash
# docs/cli.md is what the command's --help says today.
# Usage: test_cli_docs.sh PATH-TO-vfpm PATH-TO-docs/cli.md
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
bash "$here/gen-cli-docs.sh" "$1" "$fresh"
if diff -u "$2" "$fresh"; then
	echo "1 passed, 0 failed"
else
	echo "docs/cli.md is stale: run tools/gen-cli-docs.sh build/tools/vfpm docs/cli.md"
	echo "0 passed, 1 failed"
	exit 1
fi
