"""A house-price-like table (issue 16): 1,460 rows, 60 numeric and 20 categorical columns,
a price around 1.8e5 that is mostly linear in a few of them, plus noise. Writes
house.csv and prints the test r2 of a ridge regression (scikit-learn, one-hot categories,
standardised numbers) on a random 70/15/15 split with seed 0: the reference bma is
compared with (bma draws its own split, of the same sizes, from the same rows)."""
import sys
import numpy as np

rng = np.random.default_rng(16)
n = 1460
num = rng.normal(size=(n, 60))
cats = rng.integers(0, 6, size=(n, 20))
price = (180_000 + 30_000 * num[:, 0] + 20_000 * num[:, 1] - 15_000 * num[:, 2] + 8_000 * num[:, 3] * num[:, 4]
         + 12_000 * (cats[:, 0] == 3) - 9_000 * (cats[:, 1] == 1) + 10_000 * rng.normal(size=n))
with open(sys.argv[1], "w") as f:
    f.write(",".join([f"n{i}" for i in range(60)] + [f"c{i}" for i in range(20)] + ["price"]) + "\n")
    for r in range(n):
        f.write(",".join([f"{v:.4f}" for v in num[r]] + [f"k{v}" for v in cats[r]] + [f"{price[r]:.0f}"]) + "\n")

from sklearn.linear_model import RidgeCV
from sklearn.model_selection import train_test_split
from sklearn.metrics import r2_score
X = np.hstack([num, np.eye(6)[cats].reshape(n, -1)])
Xtr, Xte, ytr, yte = train_test_split(X, price, test_size=0.15, random_state=0)
m = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Xtr, ytr)
print(f"ridge test r2 {r2_score(yte, m.predict(Xte)):.4f}")
