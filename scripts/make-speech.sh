#!/usr/bin/env bash
# Spoken digits "zero".."nine" synthesised with espeak-ng, for examples/speech.bma.
#
#   scripts/make-speech.sh [OUT]        (default: examples/data/speech)
#
# Writes OUT/train/<digit>/*.wav and OUT/test/<digit>/*.wav (22,050 Hz, mono, 16-bit, as
# espeak-ng writes them). A voice is an accent (espeak-ng's English languages) with a
# variant (`+m3`, `+f2`, ...); the TEST voices are disjoint from the train voices in both:
# no test accent and no test variant is ever heard in training. Every voice says every digit
# at several speeds (-s, words per minute) and pitches (-p, 0-99). The output is
# deterministic: the same files for the same espeak-ng. Installs espeak-ng with apt when it
# is missing. Existing clips are kept (delete OUT to regenerate).
set -euo pipefail

out=${1:-examples/data/speech}

if ! command -v espeak-ng >/dev/null; then
    echo "espeak-ng is missing: installing it with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then apt-get update -q && apt-get install -y -q espeak-ng
    else sudo apt-get update -q && sudo apt-get install -y -q espeak-ng; fi
fi

digits=(zero one two three four five six seven eight nine)

train_accents=(en-gb en-us en-gb-scotland en-gb-x-rp en-029)
train_variants=(m1 m2 m4 m6 f1 f3 f5 klatt2)
train_speeds=(130 160 190)
train_pitches=(35 65)

test_accents=(en-gb-x-gbclan en-gb-x-gbcwmd en-us-nyc)
test_variants=(m3 m5 m7 f2 f4 klatt3)
test_speeds=(145 175)
test_pitches=(45 55)

# One clip; skipped when it exists, so an interrupted run resumes.
say() { # split accent variant speed pitch digit
    local file="$out/$1/$6/$2+$3-s$4-p$5.wav"
    [ -s "$file" ] && return 0
    espeak-ng -v "$2+$3" -s "$4" -p "$5" -w "$file.tmp" "${digits[$6]}"
    mv "$file.tmp" "$file"
}

make() { # split accents[] variants[] speeds[] pitches[] (as names of arrays)
    local split=$1
    local -n accents=$2 variants=$3 speeds=$4 pitches=$5
    local count=0
    for d in "${!digits[@]}"; do
        mkdir -p "$out/$split/$d"
        for a in "${accents[@]}"; do
            for v in "${variants[@]}"; do
                for s in "${speeds[@]}"; do
                    for p in "${pitches[@]}"; do
                        say "$split" "$a" "$v" "$s" "$p" "$d"
                        count=$((count + 1))
                    done
                done
            done
        done
    done
    echo "$split: $count clips, ${#accents[@]} accents x ${#variants[@]} variants, in $out/$split"
}

make train train_accents train_variants train_speeds train_pitches
make test test_accents test_variants test_speeds test_pitches
