#!/usr/bin/env bash
# Renders the vfpm command's --help texts into a man page (vfpm.1), so that
# the page and the command never disagree.
#   gen-man.sh PATH-TO-vfpm OUTPUT VERSION
set -euo pipefail
vfpm=$1 out=$2 version=$3
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"; }
{
	echo ".TH VFPM 1 \"\" \"vfpm $version\" \"User Commands\""
	echo ".SH NAME"
	echo "vfpm \\- serve PCI devices over vfio-user with runtime power management"
	echo ".SH SYNOPSIS"
	echo ".nf"
	"$vfpm" --help | esc
	echo ".fi"
	for cmd in $("$vfpm" --help | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}'); do
		echo ".SH \"VFPM ${cmd^^}\""
		echo ".nf"
		"$vfpm" "$cmd" --help | esc
		echo ".fi"
	done
	echo ".SH SEE ALSO"
	echo "The project's README.md and docs/ (docs/cli.md, docs/hostile-clients.md)."
} > "$out"
