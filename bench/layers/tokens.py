"""Writes the texts of the transformer benchmark (transformer.sh, quiet.sh, variants.sh,
purge_delay.sh): N rows of 130 random words w0..w997 (seed 1), labelled a, b, a, b, ...

python tokens.py OUT.csv N
"""
import random
import sys

random.seed(1)
with open(sys.argv[1], "w") as f:
    f.write("text,label\n")
    for i in range(int(sys.argv[2])):
        f.write(" ".join(f"w{random.randrange(998)}" for _ in range(130)) + f",{'ab'[i % 2]}\n")
