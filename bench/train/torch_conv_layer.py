"""PyTorch CPU (1 thread) on the digits CNN's 32->32 3x3 `same` convolution, batch 64, 8x8 maps:
GFLOP/s of the forward pass, of forward + backward, and of MKL's plain matmul of the forward
GEMM's shape, for comparison with bench/train/gemm_shapes (bench/train/gemm_shapes.sh)."""
import time

import torch

torch.set_num_threads(1)


def per_call(f, n=50):
    f()
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n


flop = 2 * 32 * 288 * 4096
a, b = torch.randn(32, 288), torch.randn(288, 4096)
print(f"torch matmul 32x288x4096        {flop / per_call(lambda: a @ b) / 1e9:6.1f} GFLOP/s")
x = torch.randn(64, 32, 8, 8, requires_grad=True)
conv = torch.nn.Conv2d(32, 32, 3, padding=1)
print(f"torch conv2d forward            {flop / per_call(lambda: conv(x)) / 1e9:6.1f} GFLOP/s")


def step():
    conv(x).sum().backward()


print(f"torch conv2d forward + backward {3 * flop / per_call(step) / 1e9:6.1f} GFLOP/s")
