#!/bin/sh
# install-deps.sh [--test|--fuzz] — install the Debian packages chatvault needs
# to build (and, with --test, to run its tests, `make valgrind`, the benchmarks
# with their plot and the demo; with --fuzz, to build the libFuzzer targets of
# `make fuzz`) when missing.
# Called by `make`, `make check`, `make demo` and `make fuzz`; safe to run again.
set -eu

build_pkgs="gcc libc6-dev make pkg-config libconfig-dev libjansson-dev libpq-dev
librdkafka-dev libarchive-dev libzstd-dev liblmdb-dev libssl-dev libxml2-dev libre-dev
libcurl4-openssl-dev libmicrohttpd-dev"
test_pkgs="libcmocka-dev postgresql postgresql-common libxml2-utils zstd tar
python3 procps bc systemd time sip-tester valgrind gnuplot-nox"
fuzz_pkgs="clang libclang-rt-dev"
# The persistent chat server (chat/): XCCOS parser, file service; curl for its test.
build_pkgs="$build_pkgs libexpat1-dev libmicrohttpd-dev"
test_pkgs="$test_pkgs curl"

want=$build_pkgs
[ "${1:-}" = "--test" ] && want="$build_pkgs $test_pkgs"
[ "${1:-}" = "--fuzz" ] && want="$build_pkgs $fuzz_pkgs"

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "install-deps: missing packages:$missing; run as root or install sudo" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
