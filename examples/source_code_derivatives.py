"""Source-code derivatives: the examples of "Differentiable Programming" (seed 003).

The post contrasts tape-based backpropagation with differentiable programming
by source transformation (Zygote) and walks through four small programs; this
script runs each of them through diffsrc and prints what the post shows:

1. F(a, b) = a / (1 + b^2) at (1, 2): value 0.2, gradient (0.2, -0.16), its
   SSA IR and the generated derivative source (the post's ``dF``).
2. G(x) = 3x^2 + 2x + 1: gradient 32 at x = 5.
3. A ``Point`` dataclass with operator overloads and a ``distance`` using a
   norm; K1, K2 fitted so that p1*K1 + p2*K2 reaches p = (-1/3, 1) with
   p1 = (2, 3), p2 = (-2, 0): 1000 steps of lr 1e-3 from (0.1, 0.1). The post
   reports (K1, K2) = (0.33427804653861276, 0.4996408206795386).
4. The generated code for (a + a*b) / (1 + b), which simplifies to a.
5. First call (the transformation) against later calls (the cached code).

    python examples/source_code_derivatives.py [--smoke]
"""
import argparse
import time
from dataclasses import dataclass

import numpy as np

import diffsrc as ds
from diffsrc.backends import add_device_option, device_module


# ---------------------------------------------------------------- 1. F(a, b)

def F(a, b):
    y1 = b ** 2
    y2 = 1 + y1
    return a / y2


# The post feeds its hypothetical system the *text* of F; diffsrc takes that too.
INPUT_PROG = """
def F(a, b):
    y1 = b ** 2
    y2 = 1 + y1
    return a / y2
"""

G_PROG = """
def G(x):
    return 3 * x ** 2 + 2 * x + 1
"""


# ------------------------------------------------------------------- 2. G(x)

def G(x):
    return 3 * x ** 2 + 2 * x + 1


# ----------------------------------------------------- 3. Point and distance

@dataclass
class Point:
    x: float
    y: float

    def __add__(self, other):
        return Point(self.x + other.x, self.y + other.y)

    def __sub__(self, other):
        return Point(self.x - other.x, self.y - other.y)

    def __mul__(self, k):
        return Point(self.x * k, self.y * k)


def distance(p1, p2):
    dp = p1 - p2
    return np.linalg.norm(np.array([dp.x, dp.y]))


P1, P2 = Point(2.0, 3.0), Point(-2.0, 0.0)
P = Point(-1 / 3, 1.0)


def objective(k1, k2):
    """|| p1*K1 + p2*K2 - p ||, the post's do-block (the points are module globals)."""
    p_hat = P1 * k1 + P2 * k2
    return distance(p_hat, P)


def fit_points(steps=1000, lr=1e-3, put=float):
    k1, k2 = put(0.1), put(0.1)
    grad = ds.grad(objective, wrt=(0, 1))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        dk1, dk2 = grad(k1, k2)
        times.append(time.perf_counter() - t0)
        k1 -= lr * dk1
        k2 -= lr * dk2
    return k1, k2, times, grad


# ----------------------------------------------------- 4. an identity in disguise

def H(a, b):
    return (a + a * b) / (1 + b)


# ---------------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="same run (it takes a second)")
    add_device_option(parser, "where sections 1-4 run: Python floats on the CPU, or 0-d "
                      "CuPy arrays on the GPU (the timings of section 5 use floats)")
    args = parser.parse_args(argv)
    xp = device_module(parser, args)
    put = float if args.device == "cpu" else xp.asarray    # a number on the device

    print("== 1. F(a, b) = a / (1 + b^2)")
    value, (da, db) = ds.value_and_grad(F, wrt=(0, 1))(put(1.0), put(2.0))
    value, da, db = float(value), float(da), float(db)          # back to the host
    print(f"F(1, 2) = {value}")
    print(f"gradient (dF/da, dF/db) = ({da}, {db})   [post: (0.2, -0.16)]")
    print("\nSSA IR of F:")
    print(ds.ir(F, 1.0, 2.0))
    dF = ds.grad(F, wrt=(0, 1))
    dF(put(1.0), put(2.0))
    print("generated derivative source (value and both adjoints):")
    print(ds.source(dF))
    from_text = tuple(map(float, ds.grad(INPUT_PROG, wrt=(0, 1))(put(1.0), put(2.0))))
    print(f"the same from F's source text: {from_text}")

    print("\n== 2. G(x) = 3x^2 + 2x + 1")
    print(f"dG/dx at x = 5: {float(ds.grad(G)(put(5.0)))}   [post: 32]")

    print("\n== 3. Point dataclass, operator overloads, distance with a norm")
    k1, k2, times, grad = fit_points(put=put)
    k1, k2 = float(k1), float(k2)
    print(f"(K1, K2) after 1000 steps of lr 1e-3: ({float(k1)!r}, {float(k2)!r})")
    print("post (Zygote):                        (0.33427804653861276, 0.4996408206795386)")
    print("exact optimum:                        (1/3, 1/2)")
    left = objective(k1, k2)
    print(f"distance left: {left:.2e}")
    print("generated derivative of the objective:")
    print(ds.source(grad))

    print("== 4. (a + a*b) / (1 + b), which is just a")
    dH = ds.grad(H, wrt=(0, 1))
    ha, hb = map(float, dH(put(1.5), put(2.0)))
    print(f"gradient at (1.5, 2): ({ha:.12g}, {hb:.3g})   [exact: (1, 0)]")
    source = ds.source(dH)
    print(source)
    if "return a, (1.0," in source:
        print("the simplification pass reduced the function to `a`: the derivative code "
              "returns a itself and the constant gradient (1, 0), with no arithmetic left")
    else:
        print("note: not simplified to `a` (the algebraic simplification pass is off)")
    print("\n== 5. first call (transformation) vs later calls")
    first = times[0]
    later = sorted(times[1:])[len(times) // 2]
    print(f"Point fit: first call {first * 1e3:.2f} ms, median later call {later * 1e6:.1f} us "
          f"({first / later:.0f}x)")
    for name, text, args in (("F", INPUT_PROG, (1.0, 2.0)), ("G", G_PROG, (5.0,))):
        fresh = ds.grad(text, wrt=tuple(range(len(args))))   # a new function: not cached
        t0 = time.perf_counter()
        fresh(*args)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(1000):
            fresh(*args)
        t_later = (time.perf_counter() - t0) / 1000
        print(f"{name}: first call {t_first * 1e3:.2f} ms, later calls {t_later * 1e6:.1f} us "
              f"({t_first / t_later:.0f}x)")
    return k1, k2


if __name__ == "__main__":
    main()
