#!/bin/sh
# Builds libcnn.a as one prelinked object, so that only the API is global in it:
#   prelink-static.sh LD OBJCOPY AR OUT.a STAGE.a...
# `ld -r` joins every object of the stage archives (thin or not) into one relocatable object,
# resolving the references between them; `objcopy --localize-hidden` then makes every symbol of
# hidden visibility local (the stages are built with -fvisibility=hidden, and runtime/cnn.h
# gives the cnn_ API default visibility), so a program linking libcnn.a sees only cnn_* and
# cannot clash with op_*, ir_*, ... of ours.  Called by meson.build's libcnn.a custom_target.
set -eu
ld=$1 objcopy=$2 ar=$3 out=$4
shift 4
obj=${out%.a}.o
rm -f "$out" "$obj"
"$ld" -r -o "$obj" --whole-archive "$@" --no-whole-archive
"$objcopy" --localize-hidden "$obj"
"$ar" rcsD "$out" "$obj"
rm -f "$obj"
