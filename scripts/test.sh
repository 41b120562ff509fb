#!/usr/bin/env bash
# Runs every test: installs what the tests need when it is missing
# (redis-server; promtool from Debian's prometheus package), then checks the
# repository (no binaries, no file over 1 MiB), gofmt, go vet, the
# race-enabled test suite, the alert rules' unit tests (promtool) and the
# Helm chart (deploy/chartcheck: helm's own lint and template engine from
# its Go module, since no helm binary is installable from Debian or npm).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing: ${need_pkgs[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
command -v redis-server >/dev/null || { echo "redis-server is required and could not be installed" >&2; exit 1; }
command -v promtool >/dev/null || { echo "promtool (Debian package prometheus) is required and could not be installed" >&2; exit 1; }

echo "== repository"
# No compiled binaries or large generated files in git: every tracked file
# must be text (git's own test: no NUL byte) and at most 1 MiB. Images under
# docs/ (the charts of docs/benchmarks.md) are the one binary kind allowed,
# within the same size limit.
# (git ls-files --format needs git 2.38 or later.)
max_bytes=$((1024 * 1024))
bad=$(
  git ls-files --format='%(objectname) eol=%(eolinfo:index) %(path)' |
    git cat-file --batch-check='%(objectsize) %(rest)' |
    awk -v max="$max_bytes" '{
      size = $1; eol = $2; path = substr($0, length($1) + length($2) + 3)
      image = path ~ /^docs\/.*\.(png|jpg|jpeg|gif|webp)$/
      if (size > max) print path ": " size " bytes (over 1 MiB)"
      else if (eol == "eol=-text" && !image) print path ": binary"
    }'
)
if [ -n "$bad" ]; then
  echo "tracked files that do not belong in git (binaries, or over 1 MiB):" >&2
  echo "$bad" >&2
  exit 1
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted:" >&2; echo "$unformatted" >&2; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 15m "${@:-./...}"

echo "== alert rules (promtool)"
promtool check rules deploy/prometheus/alerts.yml
promtool check config deploy/prometheus/prometheus.yml >/dev/null
promtool test rules deploy/prometheus/alerts_test.yml

echo "== Helm chart (deploy/chartcheck: helm lint, helm template, strict Kubernetes types)"
# -mod=mod: the module replaces edge-agent with ../.., so a dependency the
# gateway gains is resolved here too instead of failing on a go.sum entry.
(cd deploy/chartcheck && export GOFLAGS="${GOFLAGS:-} -mod=mod" && go vet ./... && go test -count=1 -timeout 15m ./...)
