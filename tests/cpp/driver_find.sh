#!/bin/sh
# gemmconv-driver --find twice with a fresh perf database: the first run times the candidates and
# records the winner, the second reads it from the database (no timing) and plans the same choice;
# both verify the chosen plan against float64. Usage: driver_find.sh PATH/TO/gemmconv-driver
set -u
driver=$1
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
GEMMCONV_PERFDB="$dir/perfdb.txt"
export GEMMCONV_PERFDB
unset GEMMCONV_FIND
problem="--device cpu -n 2 -c 16 -k 16 --input 12x12 --filter 3x3 --pad 1 --direction forward --verify"
fail() { echo "driver_find: $*"; exit 1; }

"$driver" $problem --find-mode fast >"$dir/first.txt" 2>&1 || { cat "$dir/first.txt"; fail "first run failed"; }
cat "$dir/first.txt"
grep -q '^  find: source=find choice=' "$dir/first.txt" || fail "the first run did not time the candidates"
# Each candidate on a line of its own, with its time or why it has none (one may overrun on a busy
# machine: the outcome says so).
[ "$(grep -c '^    [a-z]' "$dir/first.txt")" -ge 2 ] || fail "the first run listed fewer than 2 candidates"
grep -q '^    [a-z_/0-9x]* *[0-9.]* ms  ok$' "$dir/first.txt" || fail "no candidate was timed"
grep -q 'verify: .* PASS' "$dir/first.txt" || fail "the first run's plan did not verify"
[ -s "$GEMMCONV_PERFDB" ] || fail "no perf database written at $GEMMCONV_PERFDB"
choice=$(sed -n 's/^  find: source=find choice=\([^ ]*\).*/\1/p' "$dir/first.txt")

"$driver" $problem --find >"$dir/second.txt" 2>&1 || { cat "$dir/second.txt"; fail "second run failed"; }
cat "$dir/second.txt"
grep -q "^  find: source=database choice=$choice\$" "$dir/second.txt" ||
  fail "the second run did not plan $choice from the database"
grep -q "solver=${choice%%/*} " "$dir/second.txt" || fail "the second run did not run $choice"
grep -q 'verify: .* PASS' "$dir/second.txt" || fail "the second run's plan did not verify"
exit 0
