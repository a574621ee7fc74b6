"""TF-IDF + logistic regression on bma's own split of a text CSV, beside bma's final model.

    python baseline.py CORPUS.csv TEXT_COLUMN TARGET_COLUMN SEED TRAIN VALID TEST [final.json]

Splits the rows exactly as bma's `text(..., split: [TRAIN, VALID, TEST], seed: SEED)` does
(split.py), fits TF-IDF + logistic regression on train, picks C on valid, and scores the
test split: the samples bma's final model is scored on. With bma's `final/final.json`,
prints both accuracies side by side.
"""
import csv
import json
import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from split import split_indices


def main():
    path, text_col, target_col = sys.argv[1:4]
    seed = int(sys.argv[4])
    fractions = [float(x) for x in sys.argv[5:8]]
    final = sys.argv[8] if len(sys.argv) > 8 else None
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = [r[text_col].strip() for r in rows]
    labels = [r[target_col].strip() for r in rows]
    tr, va, te = split_indices(labels, fractions, seed)
    print(f"{path}: {len(rows)} samples; train {len(tr)}, valid {len(va)}, test {len(te)} (seed {seed})")
    pick = lambda idx, xs: [xs[i] for i in idx]
    results = []
    for name, ngrams in [("tf-idf words + logistic regression", (1, 1)), ("tf-idf words+bigrams + logistic regression", (1, 2))]:
        t0 = time.time()
        vec = TfidfVectorizer(ngram_range=ngrams, sublinear_tf=True, lowercase=True)
        xtr = vec.fit_transform(pick(tr, texts))
        xva, xte = vec.transform(pick(va, texts)), vec.transform(pick(te, texts))
        best = None
        for c in [0.25, 0.5, 1, 2, 4, 8, 16, 32]:
            m = LogisticRegression(C=c, max_iter=2000).fit(xtr, pick(tr, labels))
            acc = accuracy_score(pick(va, labels), m.predict(xva))
            if best is None or acc > best[0]:
                best = (acc, c, m)
        test = accuracy_score(pick(te, labels), best[2].predict(xte))
        results.append((name, best[0], test, f"C={best[1]}, {time.time() - t0:.1f} s"))
    if final:
        with open(final, encoding="utf-8") as f:
            s = json.load(f)["summary"]
        results.append(("bma final model (" + s["method"] + ")", s["final_valid"]["accuracy"], s["final_test"]["accuracy"], ""))
        results.append(("bma best single trial", s["single_valid"]["accuracy"], s["single_test"]["accuracy"], ""))
    print(f"{'model':58} {'valid acc':>9} {'test acc':>9}")
    for name, v, t, note in results:
        print(f"{name:58} {v:9.4f} {t:9.4f}  {note}")


if __name__ == "__main__":
    main()
