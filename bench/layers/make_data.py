"""Writes the texts of bench/layers/conv1d.sh: N rows of 140 words w0..w999 (so every text
fills max_len 128), labelled by whether the words w0..w49 outnumber w50..w99.

python make_data.py OUT.csv N
"""
import random
import sys

random.seed(7)
out, n = sys.argv[1], int(sys.argv[2])
with open(out, "w") as f:
    f.write("text,label\n")
    for _ in range(n):
        words = [random.randrange(1000) for _ in range(140)]
        a = sum(w < 50 for w in words[:128])
        b = sum(50 <= w < 100 for w in words[:128])
        f.write("\"%s\",%s\n" % (" ".join("w%d" % w for w in words), "yes" if a > b else "no"))
