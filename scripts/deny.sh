#!/usr/bin/env bash
# Supply-chain check: `cargo deny check` (advisories, licenses, bans, sources) with the policy
# in deny.toml, offline.
#   - cargo-deny is installed pinned (`cargo install --locked`) into .tools/ when that exact
#     version is not already there; a fresh machine needs only cargo and crates.io.
#   - Advisories come from a local copy of the RustSec advisory database: ADVISORY_DB, by
#     default the snapshot in the directory beside this checkout (see $advisory_db below),
#     either its data files with a SNAPSHOT file giving their date, or a git clone. cargo-deny wants a
#     git checkout, so a throwaway repository is made from those files under target/ at each
#     run, committed with a fixed author and the snapshot's own date: that date is the age
#     cargo-deny checks against deny.toml's maximum-db-staleness. Nothing is fetched.
set -euo pipefail

CARGO_DENY_VERSION=0.20.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
deny="$tools/bin/cargo-deny"
advisory_db=${ADVISORY_DB:-"$(dirname "$root")/shared/advisory-db"}
db_root="$root/target/advisory-dbs"
# The one database deny.toml names; cargo-deny keeps it in a directory derived from this URL.
db_url=https://github.com/RustSec/advisory-db

die() { echo "deny: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not on PATH"
command -v git >/dev/null || die "git is not on PATH (cargo-deny reads the advisory database as a git repository)"
# Without a database the other three checks still run, loudly; REQUIRE_ADVISORY_DB=1 (or an
# explicit ADVISORY_DB) makes a missing one an error instead.
checks=(advisories licenses bans sources)
if [[ ! -d "$advisory_db/crates" ]]; then
  if [[ -n "${ADVISORY_DB:-}" || "${REQUIRE_ADVISORY_DB:-0}" == 1 ]]; then
    die "no advisory database at $advisory_db (no crates/ in it); set ADVISORY_DB to a copy of github.com/rustsec/advisory-db"
  fi
  echo "deny: WARNING: no advisory database at $advisory_db: checking licenses, bans and sources" \
    "only. Set ADVISORY_DB to a copy of github.com/rustsec/advisory-db to check advisories." >&2
  checks=(licenses bans sources)
fi

# cargo-deny reads the dependency graph of every target platform (`cargo metadata` without a
# filter), so the crates of platforms the local build never compiles (android_system_properties,
# web-time, ...) must be in the registry cache before it runs with --offline. `cargo fetch`
# without --target downloads them all; only the advisory database is read offline.
echo "deny: cargo fetch --locked (every platform's crates, for cargo metadata)" >&2
(cd "$root" && cargo fetch --locked) || die "cargo fetch --locked failed: the crate registry is unreachable or Cargo.lock is out of date"

installed_version() { "$deny" --version 2>/dev/null | sed -n 's/^cargo-deny //p'; }
# One already on PATH at the pinned version will do (e.g. a CI image that caches it).
if [[ "$(installed_version)" != "$CARGO_DENY_VERSION" ]] && command -v cargo-deny >/dev/null &&
  [[ "$(cargo-deny --version 2>/dev/null)" == "cargo-deny $CARGO_DENY_VERSION" ]]; then
  deny=$(command -v cargo-deny)
fi
if [[ "$(installed_version)" != "$CARGO_DENY_VERSION" ]]; then
  echo "deny: installing cargo-deny $CARGO_DENY_VERSION into $tools (a few minutes, once)" >&2
  nice -n 19 cargo install --locked --root "$tools" "cargo-deny@$CARGO_DENY_VERSION"
  [[ "$(installed_version)" == "$CARGO_DENY_VERSION" ]] || die "cargo-deny $CARGO_DENY_VERSION did not install"
fi

if [[ ${#checks[@]} -eq 3 ]]; then
  (cd "$root" && "$deny" --offline check --show-stats "${checks[@]}")
  exit 0
fi

# The data's date: a snapshot's SNAPSHOT file (`date   2026-08-21 08:28:40 +0200`), or the
# last commit when ADVISORY_DB is a git clone of the upstream repository.
if [[ -f "$advisory_db/SNAPSHOT" ]]; then
  snapshot_date=$(sed -n 's/^date[[:space:]]\{1,\}//p' "$advisory_db/SNAPSHOT" | head -n 1)
elif [[ -e "$advisory_db/.git" ]]; then
  snapshot_date=$(git -C "$advisory_db" log -1 --format=%cI)
else
  die "$advisory_db has neither a SNAPSHOT file nor git history: cannot tell how old it is"
fi
if [[ -z "$snapshot_date" ]] || ! date -d "$snapshot_date" >/dev/null 2>&1; then
  die "cannot read the date of the advisory database in $advisory_db"
fi

# Where cargo-deny will look for the database: it logs the path when told not to fetch. An
# empty root makes that first run stop right after (no database yet), before any real check.
rm -rf "$db_root"
mkdir -p "$db_root"
export DENY_ADVISORY_DB_ROOT="$db_root"
db_dir=$(cd "$root" && "$deny" --offline --log-level debug check advisories 2>&1 |
  sed -n "s/.*Opening advisory database at '\([^']*\)'.*/\1/p" | head -n 1) || true
[[ -n "$db_dir" && "$db_dir" == "$db_root"/* ]] ||
  die "could not learn where cargo-deny $CARGO_DENY_VERSION expects the database for $db_url"

mkdir -p "$db_dir"
# The data files only (a clone's own .git stays behind).
(cd "$advisory_db" && tar --exclude=./.git -cf - .) | (cd "$db_dir" && tar -xf -)
(
  cd "$db_dir"
  export GIT_AUTHOR_NAME=advisory-snapshot GIT_AUTHOR_EMAIL=advisory-snapshot@localhost
  export GIT_COMMITTER_NAME=advisory-snapshot GIT_COMMITTER_EMAIL=advisory-snapshot@localhost
  export GIT_AUTHOR_DATE="$snapshot_date" GIT_COMMITTER_DATE="$snapshot_date"
  git init --quiet --initial-branch=main .
  git remote add origin "$db_url"
  git add --all
  git -c commit.gpgsign=false commit --quiet --no-verify -m "advisory database snapshot"
  # cargo-deny takes the newer of the commit date and HEAD's mtime as the fetch time: date
  # HEAD as the snapshot too, so the staleness limit measures the data, not this run.
  touch -d "$snapshot_date" .git/HEAD
)

echo "deny: cargo-deny $CARGO_DENY_VERSION, advisories as of $snapshot_date" >&2
cd "$root"
"$deny" --offline check --show-stats
