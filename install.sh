#!/bin/sh
# Ironmesh installer: installs `ironmesh` and a hardened systemd unit for the
# server or the agent, upgrades in place, and uninstalls. POSIX sh.
#
#   curl -fsSL https://get.ironmesh.io/install.sh | sh -s -- server
#   curl -fsSL https://get.ironmesh.io/install.sh | sh -s -- agent \
#     --server https://mesh.example.com:15443 --join-token "$TOKEN"
#
# An Ironmesh server serves this script at /install.sh and its own program at
# /install; 'ironmesh token create --kind join --print-install' prints the line
# that installs an agent from it, trusting only the root the token pins.
#
# Run `sh install.sh --help` for every option; docs/install.md explains them.
# Everything is inside functions and `main` runs on the last line, so a
# download cut short by the network executes nothing.
set -eu

PROG=install.sh
DEFAULT_BASE_URL=https://get.ironmesh.io/releases/latest
USER_NAME=ironmesh
ETC_DIR=/etc/ironmesh
DATA_DIR=/var/lib/ironmesh
UNIT_DIR=/etc/systemd/system

usage() {
  cat <<'EOF'
Install Ironmesh (the binary, its configuration and a hardened systemd unit).

Usage:
  install.sh server [options]
  install.sh agent --server URL --join-token TOKEN [options]
  install.sh [server|agent] --uninstall [--purge] [options]

  curl -fsSL https://get.ironmesh.io/install.sh | sh -s -- server
  curl -fsSL https://get.ironmesh.io/install.sh | sh -s -- agent --server URL --join-token TOKEN

Roles:
  server                 the control plane: unit ironmesh-server.service
  agent                  the host side: unit ironmesh-agent.service

Agent options:
  --server URL           https:// URL of the server's TLS API (on upgrade: kept
                         from the installed unit when omitted)
  --join-token TOKEN     one-time join token ('ironmesh token create --kind join');
                         written to /etc/ironmesh/join.token (0600). On upgrade:
                         the installed token file is kept when omitted
  --join-token-file F    read the join token from file F instead

Where the executable comes from (default: download):
  --base-url URL         download ironmesh-<os>-<arch> and SHA256SUMS from URL
                         (env IRONMESH_BASE_URL; https:// or file://;
                         default https://get.ironmesh.io/releases/latest); an
                         Ironmesh server serves them at https://SERVER/install
  --ca-file FILE         trust only the CA certificates in FILE (PEM) for the
                         downloads, e.g. the root a join token pins
  --binary FILE          install FILE instead of downloading (air-gapped hosts);
                         checked against --sha256, --checksums or the
                         SHA256SUMS file next to FILE
  --sha256 HEX           expected SHA-256 of --binary
  --checksums FILE       SHA256SUMS file (sha256sum format) for --binary

Install options:
  --prefix DIR           install the binary as DIR/bin/ironmesh (default /usr/local;
                         upgrade and uninstall take it from the installed unit)
  --no-start             write and enable the unit but start nothing (needed
                         where systemd is not running: containers, image builds)
  --no-systemd           write no unit and never call systemctl (implies --no-start)
  --root DIR             install under DIR instead of / (tests, image builds):
                         every path is prefixed with DIR, and useradd, chown and
                         systemctl are printed, never run; systemd counts as
                         running when DIR/run/systemd/system exists
  --dry-run              print every action, change nothing

Uninstall:
  --uninstall            stop and disable the unit(s), remove them and the binary;
                         keeps /etc/ironmesh and /var/lib/ironmesh. With a role,
                         only that role (the binary stays while the other role's
                         unit is installed)
  --purge                with --uninstall: also remove the configuration and,
                         once no role is left, /etc/ironmesh and /var/lib/ironmesh

  -h, --help             print this help

Needs root (except with --root or --dry-run). Exit status: 0 on success,
2 for a usage error, 1 for any other failure; errors are printed on stderr as
"install.sh: error: ...". Test hooks: IRONMESH_UNAME_S and IRONMESH_UNAME_M
replace `uname -s` and `uname -m`.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
usage_error() {
  printf '%s: error: %s\n%s: run "install.sh --help" for usage\n' "$PROG" "$*" "$PROG" >&2
  exit 2
}

# ---------------------------------------------------------------- actions --
# Every change goes through one of these, so --dry-run and --root are honoured
# in one place.

# A command that changes files under ROOT.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    say "dry-run: would run: $*"
    return 0
  fi
  say "+ $*"
  "$@"
}

# A command that acts on the host itself (users, ownership, systemd): printed,
# never run, under --root or --dry-run.
run_host() {
  if [ "$DRY_RUN" = 1 ]; then
    say "dry-run: would run: $*"
    return 0
  fi
  if [ -n "$ROOT" ]; then
    say "--root: not running: $*"
    return 0
  fi
  say "+ $*"
  "$@"
}

# chown, skipped with a message when the owner does not exist (yet).
own() { # OWNER:GROUP PATH
  if [ -z "$ROOT" ] && [ "$DRY_RUN" = 0 ] && ! id "$USER_NAME" >/dev/null 2>&1; then
    warn "no user '$USER_NAME': not running chown $1 $2"
    return 0
  fi
  run_host chown "$1" "$2"
}

# Writes CONTENT to DEST with MODE, atomically (temporary file + rename) and
# only when it differs. Sets CHANGED to 1 when it wrote.
put_file() { # DEST MODE CONTENT
  CHANGED=0
  new=$WORK/put.new
  printf '%s\n' "$3" >"$new"
  if [ -f "$1" ] && cmp -s "$new" "$1"; then
    if [ "$DRY_RUN" = 1 ]; then
      say "dry-run: unchanged: $1"
    else
      run chmod "$2" "$1"
      say "unchanged: $1"
    fi
    return 0
  fi
  CHANGED=1
  if [ "$DRY_RUN" = 1 ]; then
    say "dry-run: would write $1 (mode $2)"
    return 0
  fi
  PENDING=$1.ironmesh-new.$$
  (umask 077 && cp "$new" "$PENDING")
  chmod "$2" "$PENDING"
  mv -f "$PENDING" "$1"
  PENDING=
  say "wrote $1 (mode $2)"
}

make_dir() { # DIR MODE
  if [ -d "$1" ]; then
    run chmod "$2" "$1"
  else
    run mkdir -p "$1"
    run chmod "$2" "$1"
  fi
}

cleanup() {
  if [ -n "${PENDING:-}" ]; then rm -f "$PENDING"; fi
  if [ -n "${WORK:-}" ]; then rm -rf "$WORK"; fi
}

# ------------------------------------------------------------- arguments --

parse_args() {
  ROLE=
  SERVER_URL=
  JOIN_TOKEN=
  JOIN_TOKEN_FILE=
  BASE_URL=${IRONMESH_BASE_URL:-}
  BASE_URL_ARG=0
  CA_FILE=
  BINARY=
  SHA256=
  CHECKSUMS=
  PREFIX=/usr/local
  PREFIX_ARG=0
  ROOT=
  NO_START=0
  NO_SYSTEMD=0
  UNINSTALL=0
  PURGE=0
  DRY_RUN=0
  HAVE_TOKEN_ARG=0
  INSTALL_ONLY=
  while [ $# -gt 0 ]; do
    arg=$1
    shift
    case $arg in
      --*=*)
        name=${arg%%=*}
        value=${arg#*=}
        inline=1
        ;;
      *)
        name=$arg
        value=
        inline=0
        ;;
    esac
    case $name in
      --server | --join-token | --join-token-file | --base-url | --ca-file | --binary | \
        --sha256 | --checksums | --prefix | --root)
        if [ "$inline" = 0 ]; then
          if [ $# -eq 0 ]; then usage_error "option $name needs a value"; fi
          value=$1
          shift
        fi
        case $value in
          '' | -*) usage_error "option $name needs a value" ;;
        esac
        case $name in
          --server) SERVER_URL=$value ;;
          --join-token)
            JOIN_TOKEN=$value
            HAVE_TOKEN_ARG=1
            ;;
          --join-token-file) JOIN_TOKEN_FILE=$value ;;
          --base-url)
            BASE_URL=$value
            BASE_URL_ARG=1
            ;;
          --ca-file) CA_FILE=$value ;;
          --binary) BINARY=$value ;;
          --sha256) SHA256=$value ;;
          --checksums) CHECKSUMS=$value ;;
          --prefix)
            PREFIX=$value
            PREFIX_ARG=1
            ;;
          --root) ROOT=$value ;;
        esac
        case $name in
          --root | --prefix) ;;
          *) INSTALL_ONLY="$INSTALL_ONLY $name" ;;
        esac
        ;;
      --no-start | --no-systemd | --uninstall | --purge | --dry-run | --help | -h)
        if [ "$inline" = 1 ]; then usage_error "option $name takes no value"; fi
        case $name in
          --no-start) NO_START=1 ;;
          --no-systemd) NO_SYSTEMD=1 ;;
          --uninstall) UNINSTALL=1 ;;
          --purge) PURGE=1 ;;
          --dry-run) DRY_RUN=1 ;;
          --help | -h)
            usage
            exit 0
            ;;
        esac
        case $name in
          --no-start | --no-systemd) INSTALL_ONLY="$INSTALL_ONLY $name" ;;
        esac
        ;;
      server | agent)
        if [ -n "$ROLE" ]; then usage_error "give one role, server or agent (got $ROLE and $arg)"; fi
        ROLE=$arg
        ;;
      -*) usage_error "unknown option '$arg'" ;;
      *) usage_error "unexpected argument '$arg': the role is server or agent" ;;
    esac
  done

  if [ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ]; then
    usage_error "--purge goes with --uninstall"
  fi
  case $PREFIX in
    /*) ;;
    *) usage_error "--prefix must be an absolute path (got '$PREFIX')" ;;
  esac
  if printf '%s' "$PREFIX" | grep -q '[^A-Za-z0-9._/+-]'; then
    usage_error "--prefix may hold only letters, digits and . _ / + - (got '$PREFIX')"
  fi
  PREFIX=${PREFIX%/}
  if [ "$UNINSTALL" = 1 ]; then
    if [ -n "$INSTALL_ONLY" ]; then
      usage_error "option${INSTALL_ONLY} does not apply to --uninstall"
    fi
    return 0
  fi
  if [ -z "$ROLE" ]; then
    usage_error "say what to install: install.sh server or install.sh agent --server URL --join-token TOKEN"
  fi
  if [ "$ROLE" = server ]; then
    for opt in "--server:$SERVER_URL" "--join-token:$JOIN_TOKEN" "--join-token-file:$JOIN_TOKEN_FILE"; do
      if [ -n "${opt#*:}" ]; then usage_error "${opt%%:*} is an agent option, not a server one"; fi
    done
  fi
  if [ -n "$JOIN_TOKEN" ] && [ -n "$JOIN_TOKEN_FILE" ]; then
    usage_error "give --join-token or --join-token-file, not both"
  fi
  if [ -n "$BINARY" ] && [ "$BASE_URL_ARG" = 1 ]; then
    usage_error "give --binary or --base-url, not both"
  fi
  if [ -n "$BINARY" ] && [ -n "$CA_FILE" ]; then
    usage_error "--ca-file is for downloads: give --binary or --ca-file, not both"
  fi
  if [ -z "$BINARY" ] && { [ -n "$SHA256" ] || [ -n "$CHECKSUMS" ]; }; then
    usage_error "--sha256 and --checksums go with --binary"
  fi
  if [ -n "$SHA256" ] && [ -n "$CHECKSUMS" ]; then
    usage_error "give --sha256 or --checksums, not both"
  fi
  if [ -n "$SHA256" ] && ! printf '%s' "$SHA256" | grep -Eq '^[0-9A-Fa-f]{64}$'; then
    usage_error "--sha256 must be 64 hexadecimal digits"
  fi
  if [ -z "$BINARY" ]; then
    BASE_URL=${BASE_URL:-$DEFAULT_BASE_URL}
    BASE_URL=${BASE_URL%/}
    case $BASE_URL in
      https://?* | file:///*) ;;
      *) usage_error "--base-url must be an https:// (or file://) URL (got '$BASE_URL')" ;;
    esac
  fi
}

# The root directory: "" for the real system.
resolve_root() {
  if [ -z "$ROOT" ]; then return 0; fi
  if [ ! -d "$ROOT" ]; then die "--root $ROOT is not a directory"; fi
  ROOT=$(cd "$ROOT" && pwd -P)
  if [ "$ROOT" = / ]; then ROOT=; fi
}

check_privileges() {
  if [ -n "$ROOT" ]; then return 0; fi
  if [ "$(id -u)" = 0 ]; then return 0; fi
  if [ "$DRY_RUN" = 1 ]; then
    say "dry-run: not root: a real run needs root"
    return 0
  fi
  die "must run as root (use sudo: curl -fsSL .../install.sh | sudo sh -s -- ...), or pass --root DIR to install under a directory"
}

# Agent settings; on upgrade the installed unit and token file fill in.
resolve_agent() {
  installed_unit=$ROOT$UNIT_DIR/ironmesh-agent.service
  if [ -z "$SERVER_URL" ] && [ -f "$installed_unit" ]; then
    SERVER_URL=$(sed -n 's/^ExecStart=.* --server \([^ ]*\).*$/\1/p' "$installed_unit" | head -n 1)
    if [ -n "$SERVER_URL" ]; then say "keeping --server $SERVER_URL from $installed_unit"; fi
  fi
  if [ -z "$SERVER_URL" ]; then
    usage_error "agent needs --server URL (the https:// URL of the server's TLS API, e.g. https://mesh.example.com:15443)"
  fi
  if ! printf '%s' "$SERVER_URL" | grep -Eq '^https://[][A-Za-z0-9._~:@-]+(/[A-Za-z0-9._~/-]*)?$'; then
    usage_error "--server must be an https:// URL such as https://10.0.0.1:15443 (got '$SERVER_URL')"
  fi
  if [ -n "$JOIN_TOKEN_FILE" ]; then
    if [ ! -r "$JOIN_TOKEN_FILE" ]; then die "cannot read --join-token-file $JOIN_TOKEN_FILE"; fi
    JOIN_TOKEN=$(tr -d ' \t\r\n' <"$JOIN_TOKEN_FILE")
    if [ -z "$JOIN_TOKEN" ]; then die "--join-token-file $JOIN_TOKEN_FILE is empty"; fi
    HAVE_TOKEN_ARG=1
  fi
  if [ "$HAVE_TOKEN_ARG" = 1 ]; then
    case $JOIN_TOKEN in
      *[![:graph:]]*) usage_error "--join-token must not contain spaces or control characters" ;;
    esac
  elif [ -f "$ROOT$ETC_DIR/join.token" ]; then
    say "keeping the installed join token $ROOT$ETC_DIR/join.token"
  else
    usage_error "agent needs --join-token TOKEN (create one on the server: ironmesh token create --kind join ...)"
  fi
}

# Without --prefix, an installed unit's ExecStart tells where the binary is.
adopt_installed_prefix() { # UNIT_PATH...
  if [ "$PREFIX_ARG" = 1 ]; then return 0; fi
  for u in "$@"; do
    if [ ! -f "$u" ]; then continue; fi
    found=$(sed -n 's|^ExecStart=\(/[^ ]*\)/bin/ironmesh .*$|\1|p' "$u" | head -n 1)
    if [ -n "$found" ] && [ "$found" != "$PREFIX" ]; then
      say "keeping --prefix $found from $u"
      PREFIX=$found
    fi
    return 0
  done
}

# --------------------------------------------------------------- platform --

detect_platform() {
  uname_s=${IRONMESH_UNAME_S:-$(uname -s)}
  uname_m=${IRONMESH_UNAME_M:-$(uname -m)}
  case $uname_s in
    Linux) OS=linux ;;
    Darwin) OS=darwin ;;
    *) die "unsupported operating system '$uname_s': Ironmesh runs on Linux and macOS (Darwin)" ;;
  esac
  case $uname_m in
    x86_64 | amd64) ARCH=x86_64 ;;
    aarch64 | arm64) ARCH=aarch64 ;;
    *) die "unsupported architecture '$uname_m': Ironmesh runs on x86_64 (amd64) and aarch64 (arm64)" ;;
  esac
  ARTIFACT=ironmesh-$OS-$ARCH
}

# Whether units are written and systemd is there to run them.
detect_systemd() {
  USE_UNITS=1
  SYSTEMD_RUNNING=0
  if [ "$NO_SYSTEMD" = 1 ]; then
    USE_UNITS=0
  elif [ "$OS" = darwin ]; then
    USE_UNITS=0
  elif [ -d "$ROOT/run/systemd/system" ]; then
    SYSTEMD_RUNNING=1
  fi
  if [ "$UNINSTALL" = 1 ] || [ "$NO_START" = 1 ] || [ "$SYSTEMD_RUNNING" = 1 ]; then
    return 0
  fi
  if [ "$NO_SYSTEMD" = 1 ]; then
    NO_START=1
    return 0
  fi
  if [ "$OS" = darwin ]; then
    die "macOS has no systemd, so nothing can be started; nothing was installed. Re-run with --no-start to install the binary and configuration and run 'ironmesh $ROLE' yourself"
  fi
  die "systemd is not running on this host (no $ROOT/run/systemd/system); nothing was installed. Re-run with --no-start to install and enable the unit without starting it, or with --no-systemd to install without a unit"
}

# -------------------------------------------------------------- artifact --

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{ print tolower($1) }'
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | awk '{ print tolower($1) }'
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$1" | awk '{ print tolower($1) }'
  else
    die "found no sha256sum, shasum or openssl to verify the executable"
  fi
}

# The checksum for NAME in a sha256sum-format file ("HEX  NAME" or "HEX *NAME").
sum_for() { # SUMS_FILE NAME
  awk -v n="$2" '{ f = $2; sub(/^\*/, "", f); sub(/.*\//, "", f); if (f == n) { print tolower($1); exit } }' "$1"
}

fetch() { # URL DEST
  say "downloading $1"
  if command -v curl >/dev/null 2>&1; then
    if [ -n "$CA_FILE" ]; then
      curl -fsSL --proto '=https,file' --proto-redir '=https' --retry 3 --cacert "$CA_FILE" \
        -o "$2" "$1" || die "cannot download $1 (trusting only the CA in $CA_FILE)"
    else
      curl -fsSL --proto '=https,file' --proto-redir '=https' --retry 3 -o "$2" "$1" ||
        die "cannot download $1"
    fi
  elif command -v wget >/dev/null 2>&1; then
    if [ -n "$CA_FILE" ]; then
      wget -q --ca-certificate="$CA_FILE" -O "$2" "$1" ||
        die "cannot download $1 (trusting only the CA in $CA_FILE)"
    else
      wget -q -O "$2" "$1" || die "cannot download $1"
    fi
  else
    die "found neither curl nor wget to download $1 (or install from a file with --binary FILE)"
  fi
}

# Puts the verified executable at $WORK/ironmesh. Changes nothing outside $WORK.
obtain_binary() {
  staged=$WORK/ironmesh
  if [ -n "$BINARY" ]; then
    if [ ! -f "$BINARY" ] || [ ! -r "$BINARY" ]; then die "cannot read --binary $BINARY"; fi
    cp "$BINARY" "$staged"
    name=$(basename "$BINARY")
    if [ -n "$SHA256" ]; then
      expected=$(printf '%s' "$SHA256" | tr 'A-F' 'a-f')
      source="--sha256"
    else
      sums=${CHECKSUMS:-$(dirname "$BINARY")/SHA256SUMS}
      if [ ! -r "$sums" ]; then
        if [ -n "$CHECKSUMS" ]; then die "cannot read --checksums $CHECKSUMS"; fi
        die "no checksum for --binary $BINARY: give --sha256 HEX, --checksums FILE or put SHA256SUMS next to it"
      fi
      expected=$(sum_for "$sums" "$name")
      if [ -z "$expected" ]; then expected=$(sum_for "$sums" "$ARTIFACT"); fi
      if [ -z "$expected" ]; then die "$sums lists neither $name nor $ARTIFACT"; fi
      source=$sums
    fi
  else
    if [ -n "$CA_FILE" ] && [ ! -r "$CA_FILE" ]; then die "cannot read --ca-file $CA_FILE"; fi
    fetch "$BASE_URL/SHA256SUMS" "$WORK/SHA256SUMS"
    fetch "$BASE_URL/$ARTIFACT" "$staged"
    name=$ARTIFACT
    expected=$(sum_for "$WORK/SHA256SUMS" "$ARTIFACT")
    if [ -z "$expected" ]; then die "$BASE_URL/SHA256SUMS does not list $ARTIFACT"; fi
    source=$BASE_URL/SHA256SUMS
  fi
  actual=$(sha256_of "$staged")
  if [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $name: expected $expected (from $source), got $actual; nothing was installed"
  fi
  chmod 0755 "$staged"
  say "verified $name (sha256 $actual)"
}

# ----------------------------------------------------------------- files --

server_yaml() {
  cat <<EOF
# Ironmesh server configuration, written by install.sh on first install and
# never overwritten by it. Every key is also a flag of 'ironmesh server' and an
# IRONMESH_* environment variable (see 'ironmesh server --help'); unknown keys
# are refused. Apply changes with: systemctl restart ironmesh-server
dataDir: $DATA_DIR
# httpAddr: 127.0.0.1:15080        # REST API over plain HTTP (loopback only)
# httpsAddr: 0.0.0.0:15443         # TLS API: agents (mTLS) and remote automation
# grpcAddr: 0.0.0.0:15012          # gRPC (mTLS): xDS for proxies and agents, health
# advertise: https://mesh.example.com:15443   # the URL agents enrol with
# tlsSan: mesh.example.com         # extra names for the server certificate
# trustDomain: ironmesh.local
# logLevel: info
EOF
}

agent_yaml() {
  cat <<'EOF'
# Ironmesh agent configuration, written by install.sh on first install and
# never overwritten by it. Unknown fields are refused; see docs/agent.md.
# Apply changes with: systemctl restart ironmesh-agent
node: {}
#   name: vm-1                     # default: the host name
#   labels: {region: eu-west-1, zone: eu-west-1a}
heartbeat:
  interval: 5s
services: []
# services:
#   - name: web
#     namespace: default
#     port: 8080
#     protocol: http
#     check: {http: "http://127.0.0.1:8080/healthz", interval: 5s, timeout: 1s}
upstreams: []
# upstreams:
#   - service: api.default
#     localPort: 9001
EOF
}

# The [Service] hardening shared by both units.
hardening() {
  cat <<EOF
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
RemoveIPC=yes
ReadWritePaths=$DATA_DIR
StateDirectory=ironmesh
StateDirectoryMode=0700
UMask=0077
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service @pkey
SystemCallErrorNumber=EPERM
# No MemoryDenyWriteExecute=: the JavaScript engine compiles code at run time.
CapabilityBoundingSet=
AmbientCapabilities=
LimitNOFILE=65536
EOF
}

server_unit() {
  cat <<EOF
# Written by install.sh and rewritten by every upgrade: put local changes in a
# drop-in (systemctl edit ironmesh-server).
[Unit]
Description=Ironmesh control plane server
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=$USER_NAME
Group=$USER_NAME
WorkingDirectory=$DATA_DIR
ExecStart=$PREFIX/bin/ironmesh server --config $ETC_DIR/server.yaml
Environment=NO_COLOR=1
Restart=on-failure
RestartSec=2
TimeoutStopSec=30
ProtectProc=invisible
$(hardening)

[Install]
WantedBy=multi-user.target
EOF
}

agent_unit() {
  cat <<EOF
# Written by install.sh and rewritten by every upgrade: put local changes in a
# drop-in (systemctl edit ironmesh-agent).
[Unit]
Description=Ironmesh agent
Wants=network-online.target
After=network-online.target ironmesh-server.service

[Service]
Type=simple
User=$USER_NAME
Group=$USER_NAME
WorkingDirectory=$DATA_DIR
ExecStart=$PREFIX/bin/ironmesh agent --config $ETC_DIR/agent.yaml --data-dir $DATA_DIR --join-token-file $ETC_DIR/join.token --server $SERVER_URL
Environment=NO_COLOR=1
Restart=on-failure
RestartSec=2
TimeoutStopSec=30
$(hardening)

[Install]
WantedBy=multi-user.target
EOF
}

# --------------------------------------------------------------- install --

ensure_user() {
  if [ -n "$ROOT" ]; then
    say "--root: not creating the system user '$USER_NAME'"
    return 0
  fi
  if id "$USER_NAME" >/dev/null 2>&1; then
    say "user '$USER_NAME' exists"
    return 0
  fi
  if [ "$OS" = darwin ]; then
    say "macOS: not creating a user; files stay owned by root"
    return 0
  fi
  nologin=/usr/sbin/nologin
  if [ ! -x "$nologin" ]; then nologin=/sbin/nologin; fi
  if [ ! -x "$nologin" ]; then nologin=/bin/false; fi
  if command -v useradd >/dev/null 2>&1; then
    run_host useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
      --shell "$nologin" --comment Ironmesh "$USER_NAME"
  elif command -v adduser >/dev/null 2>&1 && adduser --help 2>&1 | grep -q -- '--system'; then
    run_host adduser --system --group --home "$DATA_DIR" --no-create-home \
      --shell "$nologin" "$USER_NAME"
  else
    warn "found neither useradd nor adduser: create a system user '$USER_NAME' yourself"
  fi
}

install_binary() {
  bin_dir=$ROOT$PREFIX/bin
  target=$bin_dir/ironmesh
  BINARY_CHANGED=0
  if [ -f "$target" ] && cmp -s "$WORK/ironmesh" "$target"; then
    say "unchanged: $target"
    run chmod 0755 "$target"
    return 0
  fi
  BINARY_CHANGED=1
  if [ ! -d "$bin_dir" ]; then run mkdir -p "$bin_dir"; fi
  if [ "$DRY_RUN" = 1 ]; then
    say "dry-run: would install $target (mode 0755)"
    return 0
  fi
  # Same directory, then rename: a running ironmesh keeps its old file.
  PENDING=$bin_dir/.ironmesh.new.$$
  cp "$WORK/ironmesh" "$PENDING"
  chmod 0755 "$PENDING"
  mv -f "$PENDING" "$target"
  PENDING=
  say "installed $target (mode 0755)"
}

systemctl_cmd() {
  if [ -z "$ROOT" ] && [ "$DRY_RUN" = 0 ] && ! command -v systemctl >/dev/null 2>&1; then
    warn "systemctl not found: not running systemctl $*"
    return 0
  fi
  run_host systemctl "$@"
}

do_install() {
  unit=ironmesh-$ROLE.service
  unit_path=$ROOT$UNIT_DIR/$unit
  was_installed=0
  if [ -f "$unit_path" ]; then was_installed=1; fi
  if [ "$ROLE" = server ]; then other=ironmesh-agent.service; else other=ironmesh-server.service; fi

  ensure_user
  install_binary

  etc=$ROOT$ETC_DIR
  make_dir "$etc" 0750
  own "root:$USER_NAME" "$etc"
  config=$etc/$ROLE.yaml
  if [ -e "$config" ]; then
    say "kept existing $config"
  else
    if [ "$ROLE" = server ]; then put_file "$config" 0640 "$(server_yaml)"; else put_file "$config" 0640 "$(agent_yaml)"; fi
    own "root:$USER_NAME" "$config"
  fi
  if [ "$ROLE" = agent ] && [ "$HAVE_TOKEN_ARG" = 1 ]; then
    put_file "$etc/join.token" 0600 "$JOIN_TOKEN"
    own "$USER_NAME:$USER_NAME" "$etc/join.token"
  fi

  make_dir "$ROOT$DATA_DIR" 0700
  own "$USER_NAME:$USER_NAME" "$ROOT$DATA_DIR"

  UNIT_CHANGED=0
  if [ "$USE_UNITS" = 1 ]; then
    if [ ! -d "$ROOT$UNIT_DIR" ]; then make_dir "$ROOT$UNIT_DIR" 0755; fi
    if [ "$ROLE" = server ]; then put_file "$unit_path" 0644 "$(server_unit)"; else put_file "$unit_path" 0644 "$(agent_unit)"; fi
    UNIT_CHANGED=$CHANGED
  else
    say "not writing a systemd unit (--no-systemd or macOS)"
  fi

  if [ "$USE_UNITS" = 1 ]; then
    if [ "$SYSTEMD_RUNNING" = 1 ]; then
      if [ "$UNIT_CHANGED" = 1 ]; then systemctl_cmd daemon-reload; fi
      if [ "$NO_START" = 1 ]; then
        systemctl_cmd enable "$unit"
        say "--no-start: $unit is enabled, not started"
      else
        systemctl_cmd enable --now "$unit"
        if [ "$was_installed" = 1 ] && { [ "$BINARY_CHANGED" = 1 ] || [ "$UNIT_CHANGED" = 1 ]; }; then
          systemctl_cmd restart "$unit"
        fi
        if [ "$BINARY_CHANGED" = 1 ] && [ -f "$ROOT$UNIT_DIR/$other" ]; then
          systemctl_cmd try-restart "$other"
        fi
      fi
    else
      # systemd is not running (a container or an image build): enabling only
      # creates the symlinks, so the unit starts on the next boot.
      if [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1; then
        systemctl_cmd enable "$unit"
      else
        say "not enabling $unit: systemd is not running here (enable it with: systemctl enable $unit)"
      fi
    fi
  fi

  if [ "$DRY_RUN" = 1 ]; then
    say "dry-run: nothing was changed"
    return 0
  fi
  if [ "$was_installed" = 1 ]; then verb=upgraded; else verb=installed; fi
  say "$verb ironmesh $ROLE${ROOT:+ under $ROOT}"
  if [ "$ROLE" = server ]; then
    say "admin token: $DATA_DIR/admin.token (written on first start); API: https://<this host>:15443"
  fi
  if [ "$USE_UNITS" = 1 ]; then
    say "logs: journalctl -u $unit -f    status: systemctl status $unit"
  else
    say "run it yourself: $PREFIX/bin/ironmesh $ROLE ..."
  fi
}

# ------------------------------------------------------------- uninstall --

do_uninstall() {
  if [ -n "$ROLE" ]; then roles=$ROLE; else roles="server agent"; fi
  etc=$ROOT$ETC_DIR
  removed_unit=0
  for r in $roles; do
    unit=ironmesh-$r.service
    unit_path=$ROOT$UNIT_DIR/$unit
    if [ -f "$unit_path" ]; then
      if [ "$SYSTEMD_RUNNING" = 1 ]; then
        systemctl_cmd disable --now "$unit" || warn "could not stop and disable $unit"
      elif [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1; then
        systemctl_cmd disable "$unit" || warn "could not disable $unit"
      fi
      run rm -f "$unit_path"
      removed_unit=1
    else
      say "no $unit_path"
    fi
    wants=$ROOT$UNIT_DIR/multi-user.target.wants/$unit
    if [ -L "$wants" ] || [ -e "$wants" ]; then run rm -f "$wants"; fi
    if [ "$PURGE" = 1 ]; then
      if [ -e "$etc/$r.yaml" ]; then run rm -f "$etc/$r.yaml"; fi
      if [ "$r" = agent ] && [ -e "$etc/join.token" ]; then run rm -f "$etc/join.token"; fi
    fi
  done
  if [ "$removed_unit" = 1 ] && [ "$SYSTEMD_RUNNING" = 1 ]; then systemctl_cmd daemon-reload; fi

  remaining=
  for r in server agent; do
    case " $roles " in
      *" $r "*) continue ;; # removed above (or, in a dry run, would be)
    esac
    if [ -f "$ROOT$UNIT_DIR/ironmesh-$r.service" ]; then remaining="$remaining ironmesh-$r.service"; fi
  done
  bin=$ROOT$PREFIX/bin/ironmesh
  if [ -n "$remaining" ]; then
    say "kept $bin: still used by$remaining"
  elif [ -e "$bin" ]; then
    run rm -f "$bin"
  else
    say "no $bin"
  fi

  if [ "$PURGE" = 1 ]; then
    if [ -n "$remaining" ]; then
      say "kept $etc and $ROOT$DATA_DIR: still used by$remaining"
    else
      for d in "$etc" "$ROOT$DATA_DIR"; do
        if [ -e "$d" ]; then run rm -rf "$d"; fi
      done
      say "the system user '$USER_NAME' is kept (remove it with: userdel $USER_NAME)"
    fi
  else
    say "kept $etc and $ROOT$DATA_DIR (remove them with --uninstall --purge)"
  fi
  if [ "$DRY_RUN" = 1 ]; then say "dry-run: nothing was changed"; else say "uninstalled"; fi
}

# ------------------------------------------------------------------ main --

main() {
  umask 022
  PENDING=
  WORK=
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  parse_args "$@"
  resolve_root
  check_privileges
  if [ "$UNINSTALL" = 1 ]; then
    OS=linux
    adopt_installed_prefix "$ROOT$UNIT_DIR/ironmesh-server.service" "$ROOT$UNIT_DIR/ironmesh-agent.service"
    detect_systemd
    do_uninstall
    return 0
  fi
  if [ "$ROLE" = agent ]; then resolve_agent; fi
  adopt_installed_prefix "$ROOT$UNIT_DIR/ironmesh-$ROLE.service"
  detect_platform
  detect_systemd
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironmesh-install.XXXXXX")
  obtain_binary
  do_install
}

main "$@" </dev/null
