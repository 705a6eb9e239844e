#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module, each for FUZZTIME (default
# 30s): make fuzz. The targets are found, not listed, so a new Fuzz function
# is fuzzed the day it is written (a hand-kept list in the Makefile had
# fallen 19 targets behind). Each target is run alone (go test -fuzz takes
# one target per package and run), and a failure does not stop the others:
# the script exits non-zero at the end if any failed, and names them.
# Minimizing a new input stops every worker until it is done (up to a
# minute by default): FUZZMINIMIZETIME (default 5s) keeps a short run
# fuzzing rather than minimizing (FuzzAnthropicResponsesStream made no
# execution for 15 of its 20 s).
#
#   scripts/fuzz.sh                 every target
#   scripts/fuzz.sh translate       only targets whose package path or name matches
#   scripts/fuzz.sh -l              list the targets and exit
set -u
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}

list=0
filter=""
for a in "$@"; do
	case $a in
	-l) list=1 ;;
	*) filter=$a ;;
	esac
done

# "<package dir> <target>" for every func FuzzX(f *testing.F) in a _test.go
# file, in a stable order.
targets=$(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|' | sort -u)

failed=()
n=0
while read -r dir name; do
	[ -n "$dir" ] || continue
	if [ -n "$filter" ] && [[ "$dir $name" != *"$filter"* ]]; then
		continue
	fi
	n=$((n + 1))
	if [ $list = 1 ]; then
		echo "./$dir $name"
		continue
	fi
	echo "== ./$dir $name ($FUZZTIME)"
	if ! $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "./$dir/"; then
		failed+=("./$dir $name")
	fi
done <<<"$targets"

if [ $n = 0 ]; then
	echo "fuzz.sh: no fuzz target matches '$filter'" >&2
	exit 2
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: ${#failed[@]} of $n targets failed (their inputs are in the package's testdata/fuzz/):" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
[ $list = 1 ] || echo "fuzz.sh: $n targets, none failed"
