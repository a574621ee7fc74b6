"""A scikit-learn trainer that bma runs as a command trial (examples/command/sklearn.bma).

Reads its hyper-parameters from argv, trains a small MLP on the digits for a few epochs,
prints one JSON line per epoch (the pruner reads them) and the final metrics. Runs
without bma too: `python3 train.py --lr 0.01 --hidden 64 --alpha 0.0001`.
"""
import argparse
import json
import os
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--hidden", type=int, required=True)
parser.add_argument("--alpha", type=float, required=True)
parser.add_argument("--epochs", type=int, default=20)
args = parser.parse_args()
seed = int(os.environ.get("BMA_SEED", "0")) % (2**32)

x, y = load_digits(return_X_y=True)
x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
scaler = StandardScaler().fit(x_train)
x_train, x_valid = scaler.transform(x_train), scaler.transform(x_valid)

model = MLPClassifier(
    hidden_layer_sizes=(args.hidden,), learning_rate_init=args.lr, alpha=args.alpha, random_state=seed
)
warnings.simplefilter("ignore", ConvergenceWarning)
for epoch in range(1, args.epochs + 1):
    model.partial_fit(x_train, y_train, classes=list(range(10)))
    print(json.dumps({"step": epoch, "accuracy": model.score(x_valid, y_valid), "loss": model.loss_}), flush=True)
print(json.dumps({"accuracy": model.score(x_valid, y_valid), "loss": model.loss_}))
