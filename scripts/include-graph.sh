#!/usr/bin/env bash
# Prints which stage folder includes which (counts of #include lines), and checks the layering:
# ops <- lang <- compiler <- runtime.  A folder may include its own headers and those of the
# stages below it, never those above.  Exits 1 when an include points up.  Usage, from the
# repository's top: bash scripts/include-graph.sh
set -uo pipefail
cd "$(dirname "$0")/.."
stages=(ops lang compiler runtime)
rank() { for i in "${!stages[@]}"; do [ "${stages[$i]}" = "$1" ] && echo "$i"; done; }
bad=0
for from in "${stages[@]}"; do
    line="$from ->"
    for to in "${stages[@]}"; do
        n=$(grep -rhoE "#include \"$to/" "$from" --include='*.c' --include='*.h' --include='*.l' \
                --include='*.y' --include='*.def' | wc -l)
        [ "$n" -gt 0 ] || continue
        line="$line $to ($n)"
        if [ "$(rank "$to")" -gt "$(rank "$from")" ]; then
            echo "error: $from/ includes $to/, a stage above it:" >&2
            grep -rnE "#include \"$to/" "$from" >&2
            bad=1
        fi
    done
    echo "$line"
done
exit $bad
