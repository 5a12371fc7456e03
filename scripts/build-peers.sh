#!/usr/bin/env bash
# Builds the peer programs the tests and labs drive tortie with (calicoctl; kube-apiserver and
# the etcd 3.6 it needs) from their Go modules, into a cache outside the repo, and prints the path of each binary on stdout (one a
# line; everything else goes to stderr). Nothing of the peers' sources is committed: the go
# command takes them from the Go module proxy.
#
#   scripts/build-peers.sh [calicoctl] [kube-apiserver] [etcd]     (default: calicoctl)
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

# --- kube-apiserver and etcd pins -----------------------------------------------------------
# k8s.io/kubernetes at a release. Its go.mod replaces the 31 k8s.io staging modules with
# ./staging/src/... directories, which a wrapper module cannot reach: the wrapper replaces
# each with its published version (the staging modules of v1.X.Y are tagged v0.X.Y).
KUBE_MODULE=k8s.io/kubernetes
KUBE_RELEASE=v1.34.4
KUBE_STAGING_VERSION=v0.34.4
KUBE_GO_MIN=1.24.0 # the go line of kubernetes' go.mod at the release
# Kubernetes 1.34 needs etcd >= 3.5.24 (kubeadm's MinExternalEtcdVersion; its default is
# 3.6.5); Debian 12 has 3.4. etcd's main package is the root of its server module.
ETCD_MODULE=go.etcd.io/etcd/server/v3
ETCD_RELEASE=v3.6.5
ETCD_GO_MIN=1.24 # the go line of the server module's go.mod

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

# --- shared by kube-apiserver and etcd ------------------------------------------------------

# go_setup MIN WHAT: the toolchain in $go and $gover, the cache environment exported.
go_setup() {
  go="$(find_go)"
  gover="$(GOTOOLCHAIN=local "$go" env GOVERSION)" ||
    die "$go does not run: install Go >= $1 (see docs/peers.md)"
  version_ge "${gover#go}" "$1" ||
    die "$go is $gover; $2 needs Go >= $1 (see docs/peers.md)"
  export GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache"
  export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
}

# peer_cached BIN DIR NAME CHECK: the cached binary's sha256 is the recorded one and CHECK
# (a function taking the binary) says it reports the pin.
peer_cached() {
  [ -x "$1" ] && [ -f "$2/$3.sha256" ] || return 1
  [ "$(sha256_of "$1")" = "$(cat "$2/$3.sha256")" ] || return 1
  "$4" "$1"
}

# peer_install TMP BIN DIR NAME CHECK STARTED INFO: checks the new binary, moves it in place,
# records its sha256 and how it was built.
peer_install() {
  local tmp="$1" bin="$2" dir="$3" name="$4" check="$5" started="$6" info="$7"
  "$check" "$tmp" || {
    rm -f "$tmp"
    die "the built $name does not report its pinned version"
  }
  mv -f "$tmp" "$bin"
  sha256_of "$bin" >"$dir/$name.sha256"
  cat >"$dir/build.txt" <<EOF
$info
go $gover
built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - started)) s
sha256 $(cat "$dir/$name.sha256")
EOF
  log "$name: built in $((SECONDS - started)) s ($bin)"
}

# `kube-apiserver --version` prints "Kubernetes v1.34.4" (the -X flags below set it).
kube_apiserver_reports_pin() {
  local out
  out="$("$1" --version 2>/dev/null || true)"
  grep -qx "Kubernetes $KUBE_RELEASE" <<<"$out"
}

build_kube_apiserver() {
  local dir="$CACHE/kube-apiserver-$KUBE_RELEASE"
  local bin="$dir/kube-apiserver"
  mkdir -p "$dir"
  exec 8>"$dir/.lock"
  flock 8
  if peer_cached "$bin" "$dir" kube-apiserver kube_apiserver_reports_pin; then
    log "kube-apiserver $KUBE_RELEASE: cached ($bin)"
    echo "$bin"
    return
  fi
  go_setup "$KUBE_GO_MIN" "kube-apiserver $KUBE_RELEASE"
  log "kube-apiserver $KUBE_RELEASE: building with $gover ($KUBE_MODULE@$KUBE_RELEASE)"
  local started=$SECONDS kube_dir
  kube_dir="$("$go" mod download -json "$KUBE_MODULE@$KUBE_RELEASE" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -f "$kube_dir/go.mod" ] || die "go mod download $KUBE_MODULE@$KUBE_RELEASE gave no module"

  # The wrapper module: every replacement by a ./staging/src/k8s.io/<m> directory becomes
  # the published k8s.io/<m> at the staging version; any other local replacement would be
  # a pin to make here.
  local src="$dir/src" line path target count=0 replaces
  rm -rf "$src"
  mkdir -p "$src"
  replaces="$(awk '
    /^replace[[:space:]]*\(/ { block = 1; next }
    block && /^\)/ { block = 0; next }
    block && /=>/ { sub(/^[[:space:]]+/, ""); print; next }
    /^replace[[:space:]]+[^(]/ && /=>/ { sub(/^replace[[:space:]]+/, ""); print }
  ' "$kube_dir/go.mod")"
  {
    echo "// Generated by scripts/build-peers.sh: builds kube-apiserver $KUBE_RELEASE. Not committed."
    echo "module tortie.local/peers/kube-apiserver"
    echo
    echo "go $KUBE_GO_MIN"
    echo
    echo "require $KUBE_MODULE $KUBE_RELEASE"
    echo
  } >"$src/go.mod"
  while IFS= read -r line; do
    line="${line%%//*}"
    [ -n "${line// /}" ] || continue
    path="$(echo "$line" | awk '{print $1}')"
    target="$(echo "$line" | sed 's/.*=>[[:space:]]*//; s/[[:space:]]*$//')"
    case "$target" in
      "./staging/src/$path")
        echo "replace $path => $path $KUBE_STAGING_VERSION" >>"$src/go.mod"
        count=$((count + 1))
        ;;
      ./* | ../*) die "kubernetes' go.mod replaces $path with $target, a local module with no pin here" ;;
      *) echo "replace $line" >>"$src/go.mod" ;;
    esac
  done <<<"$replaces"
  [ "$count" -gt 0 ] || die "kubernetes' go.mod at $KUBE_RELEASE has no staging replacements"
  log "kube-apiserver $KUBE_RELEASE: $count staging modules replaced at $KUBE_STAGING_VERSION"

  local tmp="$dir/kube-apiserver.tmp.$$" v=k8s.io/component-base/version
  local minor="${KUBE_RELEASE#v1.}"
  minor="${minor%%.*}"
  (
    cd "$src"
    "$go" build -trimpath -o "$tmp" -ldflags "-s -w \
      -X $v.gitVersion=$KUBE_RELEASE -X $v.gitMajor=1 -X $v.gitMinor=$minor \
      -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z" \
      "$KUBE_MODULE/cmd/kube-apiserver"
  ) || {
    rm -f "$tmp"
    die "go build of kube-apiserver failed (the wrapper module is $src/go.mod)"
  }
  peer_install "$tmp" "$bin" "$dir" kube-apiserver kube_apiserver_reports_pin "$started" \
    "kube-apiserver $KUBE_RELEASE
module $KUBE_MODULE@$KUBE_RELEASE ($count staging modules at $KUBE_STAGING_VERSION)"
  echo "$bin"
}

# `etcd --version` prints "etcd Version: 3.6.5".
etcd_reports_pin() {
  local out
  out="$("$1" --version 2>/dev/null || true)"
  grep -qx "etcd Version: ${ETCD_RELEASE#v}" <<<"$out"
}

build_etcd() {
  local dir="$CACHE/etcd-$ETCD_RELEASE"
  local bin="$dir/etcd"
  mkdir -p "$dir"
  exec 7>"$dir/.lock"
  flock 7
  if peer_cached "$bin" "$dir" etcd etcd_reports_pin; then
    log "etcd $ETCD_RELEASE: cached ($bin)"
    echo "$bin"
    return
  fi
  go_setup "$ETCD_GO_MIN" "etcd $ETCD_RELEASE"
  log "etcd $ETCD_RELEASE: building with $gover ($ETCD_MODULE@$ETCD_RELEASE)"
  local started=$SECONDS
  # The server module's own replaces point at ../api and the like (obeyed only inside it);
  # the wrapper's requirement resolves the api, client and pkg modules at the same release.
  local src="$dir/src"
  rm -rf "$src"
  mkdir -p "$src"
  cat >"$src/go.mod" <<EOF
// Generated by scripts/build-peers.sh: builds etcd $ETCD_RELEASE. Not committed.
module tortie.local/peers/etcd

go $ETCD_GO_MIN

require $ETCD_MODULE $ETCD_RELEASE
EOF
  local tmp="$dir/etcd.tmp.$$"
  (
    cd "$src"
    "$go" build -trimpath -o "$tmp" -ldflags "-s -w \
      -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_RELEASE" "$ETCD_MODULE"
  ) || {
    rm -f "$tmp"
    die "go build of etcd failed (the wrapper module is $src/go.mod)"
  }
  peer_install "$tmp" "$bin" "$dir" etcd etcd_reports_pin "$started" \
    "etcd $ETCD_RELEASE
module $ETCD_MODULE@$ETCD_RELEASE"
  echo "$bin"
}

[ $# -gt 0 ] || set -- calicoctl
for peer in "$@"; do
  case "$peer" in
    calicoctl) build_calicoctl ;;
    kube-apiserver) build_kube_apiserver ;;
    etcd) build_etcd ;;
    *) die "unknown peer '$peer' (known: calicoctl, kube-apiserver, etcd)" ;;
  esac
done
