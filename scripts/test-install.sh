#!/usr/bin/env bash
# Builds the library, installs it into a fresh temporary prefix and uses it the way an
# embedding program would: examples/embed/app.c compiled with pkg-config against libcnn.so and
# against libcnn.a, the installed cnnc and the installed Python module.  Ends with one line:
# "install: N passed, M failed".
# The build folder (build-install, or $CNN_INSTALL_BUILD) keeps its objects between runs; only
# its prefix changes.  Fashion-MNIST comes from $CNNC_DATA (default: Debian's package's folder).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${CNN_INSTALL_BUILD:-build-install}
data=${CNNC_DATA:-/usr/share/datasets/fashion-mnist}
prefix=$(mktemp -d /tmp/cnnc-install.XXXXXX)
work=$prefix.work
mkdir -p "$work"
trap 'rm -rf "$prefix" "$work"' EXIT
passed=0 failed=0
check() { # check NAME COMMAND...: runs the command, counts and reports it
    local name=$1; shift
    if "$@" >"$work/last.log" 2>&1; then
        passed=$((passed + 1)); echo "ok   $name"
    else
        failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$work/last.log" | tail -20
    fi
}
finish() { echo "install: $passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }

if [ -d "$build" ]; then
    meson configure "$build" --prefix "$prefix" >/dev/null
else
    meson setup "$build" --buildtype=debugoptimized --prefix "$prefix" >/dev/null
fi || { failed=1; echo "FAIL meson setup"; finish; }
check "build" ninja -C "$build" libcnn.so.0.1.0 libcnn.a cnnc
check "meson install" meson install -C "$build" --no-rebuild --quiet
[ "$failed" = 0 ] || finish

echo "installed into $prefix:"
(cd "$prefix" && find . -type f -o -type l | sort | sed 's|^\./|  |')
libdir=$(dirname "$(find "$prefix" -name libcnn.so.0.1.0 | head -1)")
pydir=$(dirname "$(dirname "$(find "$prefix" -path '*/cnnc/__init__.py' | head -1)")")
export PKG_CONFIG_PATH=$libdir/pkgconfig
share=$prefix/share/cnnc
net=$share/examples/lenet5.cnn

has_tree() {
    for f in "$libdir/libcnn.so.0.1.0" "$libdir/libcnn.a" "$prefix/include/cnn.h" "$libdir/pkgconfig/cnn.pc" \
             "$net" "$share/examples/embed/app.c" "$share/docs/language.md" "$pydir/cnnc/_paths.py" \
             "$prefix/bin/cnnc"; do
        [ -f "$f" ] || { echo "missing: $f"; return 1; }
    done
    [ "$(readlink "$libdir/libcnn.so.0")" = libcnn.so.0.1.0 ] && [ "$(readlink "$libdir/libcnn.so")" = libcnn.so.0 ]
}
check "tree: library, links, header, cnn.pc, examples, docs, python module" has_tree
check "soname libcnn.so.0" bash -c "readelf -d '$libdir/libcnn.so.0.1.0' | grep -q 'SONAME.*\[libcnn.so.0\]'"
only_api() { # the shared library exports cnn_ symbols only
    local other
    other=$(nm -D --defined-only "$libdir/libcnn.so.0.1.0" | awk '{print $3}' | grep -v '^cnn_')
    [ -z "$other" ] || { echo "exported: $other"; return 1; }
}
check "libcnn.so exports only cnn_ symbols" only_api
static_only_api() { # libcnn.a is one prelinked object whose only global symbols are cnn_*
    local other members
    members=$(ar t "$libdir/libcnn.a")
    other=$(nm -A -g --defined-only "$libdir/libcnn.a" | grep -v ' cnn_')
    echo "libcnn.a members: $members"
    [ "$members" = libcnn.o ] && [ -z "$other" ] || { echo "global: $other"; return 1; }
    # the same API as the shared library
    diff <(nm -D --defined-only "$libdir/libcnn.so.0.1.0" | awk '{print $3}' | sort) \
         <(nm -g --defined-only "$libdir/libcnn.a" | awk 'NF == 3 {print $3}' | sort)
}
check "libcnn.a defines only cnn_ symbols globally (nm -g --defined-only)" static_only_api
echo "pkg-config --cflags --libs cnn: $(pkg-config --cflags --libs cnn)"
echo "pkg-config --static --cflags --libs cnn: $(pkg-config --static --cflags --libs cnn)"
check "pkg-config --static names OpenMP, oneDNN, zlib, cJSON, libm" \
    bash -c "pkg-config --static --libs cnn | grep -e -fopenmp | grep -e -lz | grep -e -lcjson | grep -e -lm |
             { grep -q -e -ldnnl || ! grep -q CNN_HAVE_ONEDNN '$build/build.ninja'; }"

app=$root/examples/embed/app.c
# shellcheck disable=SC2046
check "cc app.c \$(pkg-config --cflags --libs cnn)" cc "$app" $(pkg-config --cflags --libs cnn) -o "$work/app"
# libcnn.a in the program, its dependencies (no static libdnnl/libcjson on Debian) shared
static_flags=$(pkg-config --static --cflags --libs cnn | sed 's/-lcnn\b/-l:libcnn.a/')
# shellcheck disable=SC2086
check "cc app.c \$(pkg-config --static --cflags --libs cnn) with -l:libcnn.a" cc "$app" $static_flags -o "$work/app-static"
# a program with functions named as ours (rt_fail, op_name, sb_init) links libcnn.a without a clash
printf 'int rt_fail(void) { return 7; }\nconst char *op_name(int op) { return op ? "mine" : ""; }\nvoid sb_init(void) {}\n' \
    >"$work/clash.c"
# shellcheck disable=SC2086
check "an app defining rt_fail, op_name, sb_init links libcnn.a and runs" bash -c \
    "cc '$app' '$work/clash.c' $static_flags -o '$work/app-clash' && '$work/app-clash' '$net' '$work/clash.npy' | grep -q class"
check "app-static does not need libcnn.so" bash -c "! readelf -d '$work/app-static' | grep -q 'NEEDED.*libcnn'"
# shellcheck disable=SC2086
if cc "$app" $static_flags -static -o "$work/app-full-static" >"$work/full.log" 2>&1; then
    check "fully static app runs" "$work/app-full-static" "$net" "$work/batch.npy"
else
    echo "note: a fully static link (-static) fails here: $(grep -o 'cannot find -l[a-z]*' "$work/full.log" | sort -u | tr '\n' ' ')"
fi

cd "$work" || exit 1
LD_LIBRARY_PATH=$libdir "$work/app" "$net" batch.npy >app.out 2>&1
check "app writes batch.npy and classifies it" bash -c "[ -f batch.npy ] && [ \$(grep -c 'class' app.out) = 4 ]"
"$prefix/bin/cnnc" run "$net" -i batch.npy --seed 0 >cnnc.out 2>&1
check "app's classes are cnnc run's" bash -c "diff <(grep class app.out) <(grep class cnnc.out)"
"$work/app-static" "$net" batch.npy >static.out 2>&1
check "app-static prints the same" diff app.out static.out
printf 'network x {\n  input a[4];\n  output b = a -> nosuchlayer;\n}\n' >bad.cnn
LD_LIBRARY_PATH=$libdir "$work/app" bad.cnn batch.npy >err.out 2>&1
rc=$?
cat err.out
check "app fails with the library's diagnostic" bash -c "[ $rc = 1 ] && grep -q \"bad.cnn:3:.*unknown layer 'nosuchlayer'\" err.out"
LD_LIBRARY_PATH=$libdir "$work/app" "$net" batch.npy trained.safetensors "$data" >train.out 2>&1
sed 's/^/  /' train.out | tail -3
check "app trains 20 steps with cnn_train and saves" bash -c "grep -q 'trained 20 steps' train.out && [ -s trained.safetensors ]"
"$work/app-static" "$net" batch.npy trained.safetensors >load.out 2>&1
"$prefix/bin/cnnc" run "$net" -i batch.npy -w trained.safetensors >cnnc2.out 2>&1
check "app loads the trained weights (classes as cnnc run -w)" bash -c "diff <(grep class load.out) <(grep class cnnc2.out)"
pycheck() {
    env -u CNNC_LIB -u LD_LIBRARY_PATH PYTHONPATH="$pydir" /usr/bin/python3 - "$net" <<'PY'
import subprocess, sys
import numpy as np
import cnnc
y = cnnc.Model(sys.argv[1]).run(np.load("batch.npy"))
want = [l for l in open("app.out").read().splitlines() if "class" in l]
got = ["logits[%d]: class %d (%g)" % (i, r.argmax(), r.max()) for i, r in enumerate(y)]
assert [g.split(" (")[0] for g in got] == [w.split(" (")[0] for w in want], (got, want)
print(cnnc.__file__, cnnc._lib._name)
PY
}
check "installed python module finds libcnn.so.0 and agrees" pycheck
sed 's/^/  /' "$work/last.log"
finish
