#!/bin/bash
# check-layers.sh OBJDIR: the runtime's files call only downward.
#
# LAYERS lists src/runtime/'s files from the bottom up (docs/design.md,
# "Map"); files on one line are one layer and may call each other.  Every
# rp_* or relpoline_* symbol an object uses must be defined in its own
# layer or one below.  A file in no layer fails too: a new file gets a
# place in the map.  Prints one line per violation; exit 1 if any.
set -u
DIR=${1:?usage: check-layers.sh build/obj/runtime}
LAYERS=(
	"core"
	"config log"
	"alloc"
	"registry"
	"symbols"
	"perf"
	"stub"
	"patch"
	"learn"
	"policy"
	"profile"
	"lifecycle"
	"report"
	"runtime epoch_inline"
)
declare -A rank def
for i in "${!LAYERS[@]}"; do
	for f in ${LAYERS[$i]}; do rank[$f]=$i; done
done
bad=0
shopt -s nullglob
objs=("$DIR"/*.o)
[ ${#objs[@]} -gt 0 ] || { echo "no objects in $DIR"; exit 1; }
for o in "${objs[@]}"; do
	f=$(basename "$o" .o)
	if [ -z "${rank[$f]+x}" ]; then
		echo "$f: in no layer (add it to scripts/check-layers.sh and docs/design.md)"
		bad=1
		continue
	fi
	while read -r sym; do def[$sym]=$f; done < <(nm --defined-only "$o" | awk '$2 ~ /^[TDBRC]$/ {print $3}')
done
for o in "${objs[@]}"; do
	f=$(basename "$o" .o)
	[ -n "${rank[$f]+x}" ] || continue
	while read -r sym; do
		d=${def[$sym]:-}
		[ -n "$d" ] || continue
		if [ "${rank[$d]}" -gt "${rank[$f]}" ]; then
			echo "$f calls up into $d ($sym)"
			bad=1
		fi
	done < <(nm -u "$o" | awk '{print $2}' | grep -E '^(rp_|relpoline_)')
done
exit $bad
