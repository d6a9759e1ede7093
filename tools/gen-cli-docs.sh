#!/usr/bin/env bash
# Renders the vfpm command's --help texts into docs/cli.md.
# Usage: gen-cli-docs.sh PATH-TO-vfpm [OUTPUT]   (OUTPUT defaults to stdout)
# tools/tests/test_cli_docs.sh fails when docs/cli.md no longer matches.
set -euo pipefail
vfpm=$1
out=${2:-/dev/stdout}
{
	echo "# The vfpm command"
	echo
	echo "Generated from the command's own \`--help\` texts by \`tools/gen-cli-docs.sh\`;"
	echo "a test fails when this page and the command disagree."
	echo
	echo '```'
	"$vfpm" --help
	echo '```'
	for cmd in $("$vfpm" --help | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}'); do
		echo
		echo "## vfpm $cmd"
		echo
		echo '```'
		"$vfpm" "$cmd" --help
		echo '```'
	done
} >"$out"
