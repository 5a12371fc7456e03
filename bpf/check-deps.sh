#!/bin/sh
# check-deps.sh OBJECT SRCDIR DEPFILE ERRFILE — refuses a BPF object that reaches a C library
# header. DEPFILE is `clang -M -MG` output, ERRFILE its stderr (a glibc header can break the
# dependency scan itself, e.g. stdint.h wanting __GLIBC_USE): headers named by either count.
#
# Under -target bpf, glibc's headers select 32-bit stubs (gnu/stubs-32.h) that only
# libc6-dev-i386 ships, so a BPF object may read only the kernel UAPI headers (linux/,
# asm/, asm-generic/), libbpf's (bpf/), clang's own and the project's. Exit 1 names every
# other header, so the build fails with a reason instead of a missing stub.
set -eu
object=$1
srcdir=$2
depfile=$3
errfile=$4

{
  # The dependency list: drop the target, the line continuations and the blanks.
  sed -e 's/^[^:]*://' -e 's/\\$//' "$depfile" | tr ' \t' '\n\n'
  # Headers the scan reached before it failed.
  sed -n -e 's/^In file included from \([^:]*\):.*/\1/p' \
    -e "s/^\\([^ :]*\\.h\\):[0-9]*:[0-9]*: .*/\\1/p" \
    -e "s/.*fatal error: '\\([^']*\\)' file not found.*/\\1/p" "$errfile"
} | sed '/^$/d' | sort -u >"$depfile.all"

bad=$(while read -r dep; do
  case "$dep" in
  "$srcdir"/*) ;;
  /usr/include/linux/* | /usr/include/asm/* | /usr/include/asm-generic/* | /usr/include/bpf/*) ;;
  /usr/local/include/bpf/*) ;;
  */.arch/asm/*) ;;
  */lib/clang/*/include/*) ;;
  /*) echo "$dep" ;;
  sys/* | bits/* | gnu/* | features*.h | stdc-predef.h) echo "$dep" ;;
  esac
done <"$depfile.all")
rm -f "$depfile.all"

if [ -n "$bad" ]; then
  {
    echo "tortie build: $object reaches C library (glibc) headers, which a BPF object must not:"
    printf '%s\n' "$bad" | sed 's/^/  /'
    echo "BPF code may include only kernel UAPI (linux/, asm/), libbpf (bpf/), clang's own and"
    echo "the project's headers. A UAPI header that pulls in glibc (linux/icmp.h -> linux/if.h ->"
    echo "sys/socket.h) needs a definition of our own in bpf/lib/ instead (see lib/icmp.h)."
    echo "To see the include chain: make -C $srcdir print-cflags, then clang -H <flags> -fsyntax-only <source>"
  } >&2
  exit 1
fi
