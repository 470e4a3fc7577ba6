"""``Z3Ops(width)``: the :class:`qaicmodel.arith.IntOps` method set on z3 bit-vectors.

Every function in :mod:`qaicmodel.arith` takes an ``ops`` object.  Given an
``IntOps`` it computes on Python ints (what the hosts and the device run);
given a ``Z3Ops`` the *same* function builds a z3 term, so a proof is about the
code that runs, not about a re-typed copy of it (issue #5).

Semantics match ``IntOps`` exactly, including the SMT-LIB conventions for
division by zero (``x / 0 = all ones``, ``x % 0 = x``) that ``IntOps`` copies;
``tests/test_proofs.py`` checks the two agree on random concrete inputs.
Comparisons are unsigned (``ULT``/``ULE``), shifts logical.
"""

from __future__ import annotations

from typing import Any

import z3

__all__ = ["Z3Ops", "Z3IntOps", "Z16", "Z32", "Z64", "as_int"]


def _ite(num: Any, c: Any, a: Any, b: Any) -> Any:
    """``ite`` for both op sets: tuples element-wise, booleans as Bools, numbers via ``num``."""
    c = z3.BoolVal(c) if isinstance(c, bool) else c
    if isinstance(a, tuple):
        return tuple(_ite(num, c, x, y) for x, y in zip(a, b, strict=True))
    if z3.is_bool(a) or z3.is_bool(b) or isinstance(a, bool):
        a = z3.BoolVal(a) if isinstance(a, bool) else a
        b = z3.BoolVal(b) if isinstance(b, bool) else b
        return z3.If(c, a, b)
    return z3.If(c, num(a), num(b))


class Z3Ops:
    """Unsigned ``width``-bit arithmetic on z3 ``BitVec`` terms."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.mask = (1 << width) - 1

    # -- helpers
    def _bv(self, v: Any) -> Any:
        """Lift a Python int to a constant of this width; pass z3 terms through."""
        if isinstance(v, bool):
            raise TypeError("a Python bool is not a bit-vector value")
        if isinstance(v, int):
            return z3.BitVecVal(v & self.mask, self.width)
        return v

    def var(self, name: str) -> Any:
        """A fresh symbolic value of this width (used by the proofs)."""
        return z3.BitVec(name, self.width)

    # values
    def const(self, v: int) -> Any:
        return z3.BitVecVal(v & self.mask, self.width)

    def add(self, a: Any, b: Any) -> Any:
        return self._bv(a) + self._bv(b)

    def sub(self, a: Any, b: Any) -> Any:
        return self._bv(a) - self._bv(b)

    def mul(self, a: Any, b: Any) -> Any:
        return self._bv(a) * self._bv(b)

    def udiv(self, a: Any, b: Any) -> Any:
        return z3.UDiv(self._bv(a), self._bv(b))

    def urem(self, a: Any, b: Any) -> Any:
        return z3.URem(self._bv(a), self._bv(b))

    def band(self, a: Any, b: Any) -> Any:
        return self._bv(a) & self._bv(b)

    def bor(self, a: Any, b: Any) -> Any:
        return self._bv(a) | self._bv(b)

    def shl(self, a: Any, n: Any) -> Any:
        return self._bv(a) << self._bv(n)

    def lshr(self, a: Any, n: Any) -> Any:
        return z3.LShR(self._bv(a), self._bv(n))

    # predicates
    def ult(self, a: Any, b: Any) -> Any:
        return z3.ULT(self._bv(a), self._bv(b))

    def ule(self, a: Any, b: Any) -> Any:
        return z3.ULE(self._bv(a), self._bv(b))

    def eq(self, a: Any, b: Any) -> Any:
        return self._bv(a) == self._bv(b)

    def ne(self, a: Any, b: Any) -> Any:
        return self._bv(a) != self._bv(b)

    def land(self, *cs: Any) -> Any:
        return z3.And(*[z3.BoolVal(c) if isinstance(c, bool) else c for c in cs])

    def lor(self, *cs: Any) -> Any:
        return z3.Or(*[z3.BoolVal(c) if isinstance(c, bool) else c for c in cs])

    def lnot(self, c: Any) -> Any:
        return z3.Not(z3.BoolVal(c) if isinstance(c, bool) else c)

    def ite(self, c: Any, a: Any, b: Any) -> Any:
        return _ite(self._bv, c, a, b)

    def umin(self, a: Any, b: Any) -> Any:
        a, b = self._bv(a), self._bv(b)
        return z3.If(z3.ULE(a, b), a, b)

    def add_overflows(self, a: Any, b: Any) -> Any:
        """True when ``a + b`` does not fit in ``width`` bits (check_add_overflow)."""
        return z3.Not(z3.BVAddNoOverflow(self._bv(a), self._bv(b), False))


Z16 = Z3Ops(16)
Z32 = Z3Ops(32)
Z64 = Z3Ops(64)


def as_int(model: Any, term: Any) -> int | bool:
    """Evaluate ``term`` in a z3 model as a Python int (or bool)."""
    v = model.eval(term, model_completion=True)
    if z3.is_bool(v):
        return bool(z3.is_true(v))
    return v.as_long()


class Z3IntOps:
    """Unsigned ``width``-bit arithmetic on z3 *Int* terms (values kept in [0, 2**width)).

    For statements about multiplication and division by a *symbolic* divisor
    at 64 bits, bit-blasting is hopeless (multiplier equivalence is hard for
    SAT); over integers the same facts are linear in the product terms.  Wrap
    is modelled exactly: ``add``/``sub`` by a case split, ``mul``/``udiv``/
    ``urem`` by fresh variables pinned down by their defining constraints
    (collected in :attr:`side`).  Each side constraint has exactly one
    solution for any inputs, so adding them as hypotheses excludes nothing.
    Division by zero follows SMT-LIB (like ``IntOps``).  Bitwise operations
    are not available here (:class:`~qaicmodel.errors.NotModelledError`).
    """

    def __init__(self, width: int, tag: str = "") -> None:
        self.width = width
        self.mask = (1 << width) - 1
        self.modulus = 1 << width
        self.side: list[Any] = []
        self._tag = tag
        self._fresh = 0

    def _new(self, what: str) -> Any:
        self._fresh += 1
        return z3.Int(f"{what}{self._tag}#{self._fresh}")

    def _iv(self, v: Any) -> Any:
        if isinstance(v, bool):
            raise TypeError("a Python bool is not an integer value")
        if isinstance(v, int):
            return z3.IntVal(v & self.mask)
        return v

    def var(self, name: str) -> Any:
        """A fresh symbolic value; its range constraint goes into :attr:`side`."""
        v = z3.Int(name)
        self.side.append(z3.And(0 <= v, v < self.modulus))
        return v

    def const(self, v: int) -> Any:
        return z3.IntVal(v & self.mask)

    def add(self, a: Any, b: Any) -> Any:
        s = self._iv(a) + self._iv(b)
        return z3.If(s >= self.modulus, s - self.modulus, s)

    def sub(self, a: Any, b: Any) -> Any:
        a, b = self._iv(a), self._iv(b)
        return z3.If(a >= b, a - b, a - b + self.modulus)

    def mul(self, a: Any, b: Any) -> Any:
        a, b = self._iv(a), self._iv(b)
        p, k = self._new("mul"), self._new("mulk")
        self.side.append(z3.And(p == a * b - k * self.modulus, 0 <= p, p < self.modulus, k >= 0))
        return p

    def udiv(self, a: Any, b: Any) -> Any:
        a, b = self._iv(a), self._iv(b)
        q = self._new("div")
        self.side.append(z3.If(b == 0, q == self.mask, z3.And(q >= 0, q * b <= a, a < q * b + b)))
        return q

    def urem(self, a: Any, b: Any) -> Any:
        a, b = self._iv(a), self._iv(b)
        q, r = self._new("remq"), self._new("rem")
        self.side.append(
            z3.If(b == 0, r == a, z3.And(q >= 0, q * b <= a, a < q * b + b, r == a - q * b))
        )
        return r

    def _bitwise(self, *_: Any) -> Any:
        from qaicmodel.errors import NotModelledError

        raise NotModelledError("Z3IntOps has no bitwise operations; use Z3Ops")

    band = bor = shl = lshr = _bitwise

    def ult(self, a: Any, b: Any) -> Any:
        return self._iv(a) < self._iv(b)

    def ule(self, a: Any, b: Any) -> Any:
        return self._iv(a) <= self._iv(b)

    def eq(self, a: Any, b: Any) -> Any:
        return self._iv(a) == self._iv(b)

    def ne(self, a: Any, b: Any) -> Any:
        return self._iv(a) != self._iv(b)

    land = Z3Ops.land
    lor = Z3Ops.lor
    lnot = Z3Ops.lnot

    def ite(self, c: Any, a: Any, b: Any) -> Any:
        return _ite(self._iv, c, a, b)

    def umin(self, a: Any, b: Any) -> Any:
        a, b = self._iv(a), self._iv(b)
        return z3.If(a <= b, a, b)

    def add_overflows(self, a: Any, b: Any) -> Any:
        return self._iv(a) + self._iv(b) > self.mask
