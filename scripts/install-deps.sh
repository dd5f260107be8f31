#!/bin/sh
# Install what relpoline needs to build, test and benchmark, from Debian's
# packages.  Idempotent: does nothing when everything is already there.
set -e
# libclang-rt-14-dev: clang's sanitizer runtimes (make check-san), only a Recommends of clang.
# gdb: tests/t_gdb.c runs a relpoline program under gdb with its default settings.
# linux-perf: tests/run.sh checks that perf report names the stubs (RELPOLINE_JITDUMP=1).
# libdw-dev, libelf-dev: tools/relpoline-stubs names sites and targets with libdwfl (a separate
# process: the runtime itself reads ELF files on its own, src/runtime/symbols.c).
pkgs="build-essential clang libclang-rt-14-dev libcapstone-dev libdw-dev libelf-dev pkg-config valgrind python3 binutils gdb linux-perf"
case "${1:-}" in
bench) pkgs="$pkgs gnuplot-nox" ;;
esac
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
