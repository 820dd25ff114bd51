#!/bin/sh
# Installs what fusevm needs on a Debian host, or says exactly what is missing.
set -eu
PKGS="qemu-system-x86 gcc make flex bison bc libelf-dev libssl-dev ccache cpio xz-utils zstd git perl debian-archive-keyring binutils kmod"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "installing:$missing"
		apt-get update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
	else
		echo "missing packages:$missing" >&2
		echo "run: sudo apt-get update && sudo apt-get install -y$missing" >&2
		exit 1
	fi
fi
if ! command -v go >/dev/null 2>&1; then
	echo "go not found: install Go 1.26 or newer and put it on PATH" >&2
	exit 1
fi
go mod download
