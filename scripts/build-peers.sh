#!/usr/bin/env bash
# Builds the peer programs the tests drive tortie with (today: calicoctl) from their Go
# modules, into a cache outside the repo, and prints the path of each binary on stdout (one a
# line; everything else goes to stderr). Nothing of the peers' sources is committed: the go
# command takes them from the Go module proxy.
#
#   scripts/build-peers.sh [calicoctl]
#
# A cached binary whose recorded sha256 matches and that reports the pinned version is
# reused (a warm run takes well under a second); otherwise it is built again. See
# docs/peers.md for the pins, the cache layout and the figures.
#
# Environment: TORTIE_PEER_CACHE (default /var/cache/tortie/peers), GO (default: go on PATH,
# else /usr/local/go/bin/go).
set -euo pipefail

CACHE="${TORTIE_PEER_CACHE:-/var/cache/tortie/peers}"

# --- calicoctl pins -------------------------------------------------------------------------
# Calico v3.28.5. The module path github.com/projectcalico/calico has no /v3 suffix, so its
# v3.x.y tags are no Go versions: the module proxy refused them (v3.31.0, v3.30.0) and the
# pseudo-versions of the tags' commits (v3.32.1, v3.31.7, v3.31.0, v3.28.5, v3.28.4) with
# "403 Forbidden: This module version is not available". The one version it serves is the
# pseudo-version below: commit a0db560f0520 on release-v3.28, two commits after the tag
# v3.28.5, which differ from it in lib.Makefile only (the Go sources are v3.28.5's).
CALICO_MODULE=github.com/projectcalico/calico
CALICO_VERSION=v1.11.0-cni-plugin.0.20250813170300-a0db560f0520
CALICO_RELEASE=v3.28.5
CALICO_COMMIT=a0db560f0520
# Calico's go.mod replaces github.com/projectcalico/api with ./api, a nested module that the
# module zip leaves out. The proxy refuses the api module's release-v3.28 commits; the closest
# it serves is this one (the api repository's master of 2024-07-08, what tigera/operator
# pinned for v3.28). Its Go sources differ from v3.28.5's api/ in FelixConfiguration only
# (it lacks wireguardThreadingEnabled, has goGCThreshold and goMemoryLimitMB) and in
# generated code; calicoctl builds and runs against it.
CALICO_API_MODULE=github.com/projectcalico/api
CALICO_API_VERSION=v0.0.0-20240708202104-e3f70b269c2c
CALICO_GO_MIN=1.23.8 # the go line of Calico's go.mod at that commit

log() { echo "build-peers: $*" >&2; }
die() {
  echo "build-peers: error: $*" >&2
  exit 1
}

find_go() {
  if [ -n "${GO:-}" ]; then echo "$GO"; return; fi
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go; return; fi
  die "no Go toolchain: install Go >= $CALICO_GO_MIN (the project's machines have it in" \
    "/usr/local/go; Debian 12's golang-go is 1.19, too old: see docs/peers.md)"
}

# version_ge A B: A >= B for dotted versions (1.26.8 >= 1.23.8).
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# `calicoctl version` reports the pin (its client part; with no datastore in the environment
# it reaches for none). Read whole before matching: grep -q would close the pipe early.
calicoctl_reports_pin() {
  local out
  out="$(env -i PATH=/usr/bin:/bin "$1" version 2>/dev/null || true)"
  grep -q "^Client Version: *$CALICO_RELEASE\$" <<<"$out"
}

# The cached binary is good when its sha256 is the recorded one and it reports the pin.
calicoctl_cached() {
  local bin="$1" dir="$2"
  [ -x "$bin" ] && [ -f "$dir/calicoctl.sha256" ] || return 1
  [ "$(sha256_of "$bin")" = "$(cat "$dir/calicoctl.sha256")" ] || return 1
  calicoctl_reports_pin "$bin"
}

build_calicoctl() {
  local dir="$CACHE/calicoctl-$CALICO_RELEASE"
  local bin="$dir/calicoctl"
  mkdir -p "$dir"
  # One build at a time per cache; a second caller waits, then finds the binary.
  exec 9>"$dir/.lock"
  flock 9
  if calicoctl_cached "$bin" "$dir"; then
    log "calicoctl $CALICO_RELEASE: cached ($bin)"
    echo "$bin"
    return
  fi

  local go gover
  go="$(find_go)"
  gover="$(GOTOOLCHAIN=local "$go" env GOVERSION)" ||
    die "$go does not run: install Go >= $CALICO_GO_MIN (see docs/peers.md)"
  version_ge "${gover#go}" "$CALICO_GO_MIN" ||
    die "$go is $gover; calicoctl $CALICO_RELEASE needs Go >= $CALICO_GO_MIN (see docs/peers.md)"

  export GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache"
  export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
  log "calicoctl $CALICO_RELEASE: building with $gover ($CALICO_MODULE@$CALICO_VERSION)"
  local started=$SECONDS
  local calico_dir
  calico_dir="$("$go" mod download -json "$CALICO_MODULE@$CALICO_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -f "$calico_dir/go.mod" ] || die "go mod download $CALICO_MODULE@$CALICO_VERSION gave no module"

  # The wrapper module: requires Calico at the pin and carries its replace directives (the
  # go command obeys only the main module's). Replacements by a local path are nested
  # modules the zip leaves out: the api one is replaced by the published api module, any
  # other is a new pin to make.
  local src="$dir/src"
  rm -rf "$src"
  mkdir -p "$src"
  local replaces
  replaces="$(awk '
    /^replace[[:space:]]*\(/ { block = 1; next }
    block && /^\)/ { block = 0; next }
    block && /=>/ { sub(/^[[:space:]]+/, ""); print; next }
    /^replace[[:space:]]+[^(]/ && /=>/ { sub(/^replace[[:space:]]+/, ""); print }
  ' "$calico_dir/go.mod")"
  local line path target
  {
    echo "// Generated by scripts/build-peers.sh: builds calicoctl $CALICO_RELEASE. Not committed."
    echo "module tortie.local/peers/calicoctl"
    echo
    echo "go $CALICO_GO_MIN"
    echo
    echo "require $CALICO_MODULE $CALICO_VERSION"
    echo
    while IFS= read -r line; do
      line="${line%%//*}"
      [ -n "${line// /}" ] || continue
      path="$(echo "$line" | awk '{print $1}')"
      target="$(echo "$line" | sed 's/.*=>[[:space:]]*//')"
      case "$target" in
        ./* | ../*)
          [ "$path" = "$CALICO_API_MODULE" ] ||
            die "Calico's go.mod replaces $path with $target, a nested module with no pin here"
          echo "replace $CALICO_API_MODULE => $CALICO_API_MODULE $CALICO_API_VERSION"
          ;;
        *) echo "replace $line" ;;
      esac
    done <<<"$replaces"
  } >"$src/go.mod"

  local tmp="$dir/calicoctl.tmp.$$"
  local pkg=github.com/projectcalico/calico/calicoctl/calicoctl
  (
    cd "$src"
    "$go" build -trimpath -o "$tmp" -ldflags "-s -w \
      -X $pkg/commands.VERSION=$CALICO_RELEASE \
      -X $pkg/commands.GIT_REVISION=$CALICO_COMMIT \
      -X $pkg/commands/common.VERSION=$CALICO_RELEASE \
      -X main.VERSION=$CALICO_RELEASE" "$pkg"
  ) || {
    rm -f "$tmp"
    die "go build of calicoctl failed (the wrapper module is $src/go.mod)"
  }
  calicoctl_reports_pin "$tmp" || {
    rm -f "$tmp"
    die "the built calicoctl does not report $CALICO_RELEASE"
  }
  mv -f "$tmp" "$bin"
  sha256_of "$bin" >"$dir/calicoctl.sha256"
  cat >"$dir/build.txt" <<EOF
calicoctl $CALICO_RELEASE
module $CALICO_MODULE@$CALICO_VERSION
api $CALICO_API_MODULE@$CALICO_API_VERSION
go $gover
built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - started)) s
sha256 $(cat "$dir/calicoctl.sha256")
EOF
  log "calicoctl $CALICO_RELEASE: built in $((SECONDS - started)) s ($bin)"
  echo "$bin"
}

[ $# -gt 0 ] || set -- calicoctl
for peer in "$@"; do
  case "$peer" in
    calicoctl) build_calicoctl ;;
    *) die "unknown peer '$peer' (known: calicoctl)" ;;
  esac
done
