#!/bin/bash
# Issue 19's throughput check: embedded import of a 100k giant, the 26 November build (73633a4)
# against this checkout, interleaved (old, new, old, new, old, new). The old tree gets the fake's
# giant-generator fix (21e3045), without which its fake needs 18 GB to build a 100k giant.
# Needs: cargo build --release -p franchise-bench -p fake-anilist (this checkout; without the fake's
# binary beside it the bench runs its fake in-process and the RSS figure includes it). Builds the old one in /tmp.
set -eu
HERE=$(cd "$(dirname "$0")/../../.." && pwd)
OLD_TREE=${OLD_TREE:-/tmp/franchise-26nov}
OLD_TARGET=${OLD_TARGET:-/tmp/franchise-26nov-target}
if [ ! -d "$OLD_TREE" ]; then
  git -C "$HERE" worktree add -q "$OLD_TREE" 73633a4
  git -C "$HERE" show 21e3045 -- tools/fake-anilist/src/world/shapes.rs | git -C "$OLD_TREE" apply
fi
(cd "$OLD_TREE" && CARGO_TARGET_DIR=$OLD_TARGET cargo build --release -q -p franchise-bench -p fake-anilist)
OLD=$OLD_TARGET/release/franchise-bench
NEW=$HERE/target/release/franchise-bench
for i in $(seq 1 "${ROUNDS:-3}"); do
  for b in OLD NEW; do
    bin=${!b}
    echo "$b run $i: $($bin --mode throughput --throughput-sizes 100000 --runs 1 2>&1 | grep -E 'run 1/1')"
  done
done
