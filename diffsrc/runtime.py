"""Small helpers that generated derivative code calls by name.

They are written against the array's own methods (not a fixed module) so the
same text runs on NumPy and CuPy arrays, and each is self-contained so that
`ds.export` can copy its source into a standalone module.
"""
import numpy as np


def unbroadcast(g, x):
    """Sum `g` down to the shape of `x`: the adjoint of NumPy broadcasting."""
    shape = x.shape if type(x) is np.ndarray else np.shape(x)
    dtype = getattr(x, "dtype", None)
    if dtype is not None and dtype.kind in "fc" and getattr(g, "dtype", dtype) != dtype:
        g = g.astype(dtype)                  # an adjoint has the dtype of its primal
    if (g.shape if type(g) is np.ndarray else np.shape(g)) == shape:
        return g
    g = np.asarray(g) if not hasattr(g, "sum") else g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = sum_leading(g, extra)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if not shape:
        g = g.reshape(())
        if isinstance(x, (float, int)) or not hasattr(x, "shape"):
            return g[()] if type(g) is np.ndarray else float(g)   # a CuPy 0-d: to the host
        return g
    return g


def sum_leading(g, n):
    """`g` summed over its first `n` axes (the adjoint of a bias added to a batch).

    NumPy adds the rows of a tall, narrow array one at a time: 1 ms for 43264 rows of 16.
    A row of ones times g, a matrix product, sums them in BLAS's blocks (0.05 ms; 2-4x
    NumPy's time on short wide arrays too), more accurately than row by row. Elsewhere
    (no BLAS dtype, not C-contiguous) blocks of rows laid side by side make NumPy's inner
    loops long, and that two-level sum is no less accurate than the row-by-row one."""
    width = 1
    for d in g.shape[n:]:
        width *= d
    rows = g.size // width if width else 0
    if type(g) is np.ndarray and g.dtype.char in "fd" and rows > 1 and g.flags.c_contiguous:
        if width == 1 and g.ndim > n:    # one contiguous run: NumPy's pairwise sum is
            return g.sum(axis=tuple(range(n)))      # 5-8x faster ((990, 1): 1 vs 8 us)
        return (np.ones(rows, g.dtype) @ g.reshape(rows, width)).reshape(g.shape[n:])
    k = 1024 // width if width else 0
    if k < 2 or rows < 4 * k or not g.flags.c_contiguous:
        return g.sum(axis=tuple(range(n)))
    flat = g.reshape(rows, width)
    whole = rows // k * k
    total = flat[:whole].reshape(-1, k * width).sum(axis=0).reshape(k, width).sum(axis=0)
    if whole < rows:
        total += flat[whole:].sum(axis=0)
    return total.reshape(g.shape[n:])


def winner_share(g, x, y, tie=None, out=None):
    """The share of `g` that x gets in maximum(x, y): all where x > y, half at ties.

    `out=g` writes the share over g (the in-place pass passes it where g is read nowhere
    else); `tie`, where given, stands for x == y (x a clamped array: the ties of the
    array it was before)."""
    return masked_share(g, x > y, x == y if tie is None else tie, out)


def masked_share(g, wins, ties, out=None):
    """g where `wins`, half of g where `ties`, zero elsewhere: winner_share with both
    comparisons made in the forward pass, before a clamp wrote over its input (a relu's
    `t > 0` and tie_mask(t, 0)).

    Ties are rare, so the common case costs what a hand-written relu adjoint does: one
    product with a stored mask. On CuPy the ties are always added: asking whether there
    are any would wait for the GPU."""
    if type(ties) is not np.ndarray and hasattr(ties, "shape"):
        half = 0.5 * g * ties
    elif _any_true(ties):
        half = np.where(ties, 0.5 * g, 0)
    else:
        half = None
    share = g * wins if out is None else np.multiply(g, wins, out=out)
    if half is None:
        return share
    return share + half if out is None else np.add(share, half, out=out)


_FALSE = np.zeros(1, bool)
_FALSE.flags.writeable = False


def tie_mask(t, bound):
    """t == bound, the ties a clamp of t at bound leaves for masked_share and
    clamped_extremum_share; where there are none (nearly always), a read-only False
    repeated to that shape instead: views of it cost nothing, and asking it for a tie
    reads one byte, where the pullback would read the whole mask from memory long after
    it was made. On CuPy the mask as it is (asking would wait for the GPU)."""
    ties = t == bound
    if type(ties) is np.ndarray and not ties.any():
        return np.ndarray(ties.shape, bool, _FALSE, 0, (0,) * ties.ndim)
    return ties


def _any_true(mask):
    """mask.any(), at once for a mask that repeats one value (tie_mask's broadcast False)
    and for a Python or NumPy bool (the comparison of two numbers)."""
    if not isinstance(mask, np.ndarray):
        return bool(mask)
    if mask.size and not any(mask.strides):
        return bool(mask.flat[0])
    return bool(mask.any())


def clamped_extremum_share(g, y, x, axis, keepdims, clamp, bound, ties, like=None, at=None):
    """The adjoint that t gets through y = max(x, axis) (or min) where x views
    clamp(t, bound) (np.maximum: a relu before a max-pool; or np.minimum), and `ties`
    views t == bound the same way: winner_share(extremum_share(g, y, x, axis, keepdims),
    t, bound) (or (bound, t)), with x standing for t: it is on the same side of bound.
    `like` and `at` place it as extremum_share does.

    An entry the extremum chooses equals y. Without ties, it is t's own (not the bound)
    exactly where y is on t's side of the bound, so that comparison is made with y, on
    the reduced shape, and scales g there: no comparison and product at full size, and
    t need not be kept (the clamp can write over it). With ties, or on CuPy (asking
    would wait for the GPU), the two steps run as written."""
    if type(ties) is np.ndarray and not _any_true(ties):
        wins = y > bound if clamp is np.maximum else bound > y
        single = _single_winner_share(g, y, x, axis, wins, like, at)
        return extremum_share(g * wins, y, x, axis, keepdims, like, at) if single is None \
            else single
    share = extremum_share(g, y, x, axis, keepdims)
    if clamp is np.maximum:
        return _placed(winner_share(share, x, bound, tie=ties), like, at)
    return _placed(winner_share(share, bound, x, tie=ties), like, at)


def _single_winner_share(g, y, x, axis, wins, like=None, at=None):
    """`extremum_share(g * wins, y, x, axis, like=like, at=at)` where every window `wins`
    selects has one entry equal to y and y has no NaN, else None. Then there is no tie
    count to divide by: g * wins is made once on the reduced shape (zero where the bound
    wins), and each window offset is compared and written in turn, as a hand-written
    pooling adjoint does; the count of winners checks the premise."""
    if not all(type(a) is np.ndarray for a in (g, y, x, wins)):
        return None
    axes = _axes_tuple(axis, x.ndim)
    kept = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    y, wins = y.reshape(kept), wins.reshape(kept)
    share = np.multiply(g.reshape(kept), wins)      # contiguous: read once per offset
    whole, out = _place(x.shape, np.result_type(share, x.dtype), like, at)
    winners = 0
    for k in window_offsets(x.shape, axes) or [...]:
        chosen = x[k] == y
        chosen &= wins
        winners += np.count_nonzero(chosen)
        np.multiply(chosen, share, out=out[k])
    if winners != np.count_nonzero(wins) or np.isnan(y).any():
        return None
    return _placed(out, like, at) if whole is None else whole


def _place(shape, dtype, like, at):
    """(whole, out): `out` the array of `shape` and `dtype` a helper writes its result
    into, `whole` what it then returns. Without `like`, both one fresh array; with it,
    zeros shaped like `like` and their view at `at` (unindex(result, like, at), with no
    copy), or, where the result cannot be viewed there (another dtype, an index that is
    not basic, a reshape that would copy), None and a fresh array for `_placed`."""
    if like is None:
        out = np.empty(shape, dtype)
        return out, out
    if type(like) is np.ndarray and like.dtype == dtype and is_basic_index(at):
        whole = np.zeros_like(like)
        out = whole[at].reshape(shape)
        if np.may_share_memory(out, whole):
            return whole, out
    return None, np.empty(shape, dtype)


def _placed(result, like, at):
    """`result`, or, `like` given, unindex(result, like, at) with result shaped as the
    place it fills: what a helper called with `like` and `at` returns."""
    if like is None:
        return result
    return unindex(result.reshape(np.shape(like[at])), like, at)


LONG_ROW = 8192         # elements: long inner loops, a tiled row that stays in cache
NUMBER_ROWS = {}        # (dtype, repr of a number) -> read-only row of LONG_ROW of it


def long_rows(ufunc, a, b, out=None):
    """`ufunc(a, b, out=out)` where one operand is a number or a short array repeating
    along the other's leading axes (a bias, a relu's 0), on a large float array.

    NumPy's vector loops for add, multiply, maximum, ... need both operands contiguous:
    a number or a short row goes an element or a row at a time, 2-4x slower. Here the
    short operand is tiled to one long row and the large one is taken as rows of that
    length (and a shorter rest): the same operation on the same entries, so the same
    result. Anything else (CuPy, a strided array, a cast) goes to `ufunc` as it is."""
    swapped = type(a) is not np.ndarray or type(b) is np.ndarray and b.size > a.size
    large, short = (b, a) if swapped else (a, b)
    row = _tiled_row(large, short, out)
    if row is None:
        return ufunc(a, b, out=out)
    result = np.empty(large.shape, large.dtype) if out is None else out
    width = row.size
    whole = large.size - large.size % width
    if whole == large.size:              # few steps: each costs more beside large products
        parts = [(large.reshape(-1, width), row, result.reshape(-1, width))]
    else:
        flat, into = large.reshape(-1), result.reshape(-1)
        parts = [(flat[:whole].reshape(-1, width), row, into[:whole].reshape(-1, width)),
                 (flat[whole:], row[:large.size - whole], into[whole:])]
    for part, tile, into in parts:
        ufunc(*((tile, part) if swapped else (part, tile)), out=into)
    return result


def _number_row(dtype, number):
    """A read-only row of LONG_ROW entries `number` in `dtype`, made once: making it each
    call costs more than the ufunc it feeds in a training step (10-40 us beside a (128,
    512) relu). None where dtype does not represent the number exactly."""
    key = (dtype.char, repr(number))               # repr: 0.0 and -0.0 are two rows
    row = NUMBER_ROWS.get(key)
    if row is None:
        try:
            with np.errstate(over="ignore"):
                value = dtype.type(number)
        except OverflowError:
            return None
        if float(value) != number:                 # rounded, NaN or overflowed
            return None
        if len(NUMBER_ROWS) >= 64:                 # numbers computed at run time
            NUMBER_ROWS.clear()
        row = NUMBER_ROWS[key] = np.full(LONG_ROW, value)
        row.flags.writeable = False
    return row


def _tiled_row(large, short, out):
    """`short` repeated to about LONG_ROW entries of `large`'s dtype, when `large` is a
    C-contiguous float array (like `out`) and short is a number it represents exactly or
    an array of its dtype broadcasting only along its leading axes; else None."""
    if type(large) is not np.ndarray or large.dtype.kind != "f" or \
            not large.flags.c_contiguous or not (out is None or (
                type(out) is np.ndarray and out.flags.c_contiguous and
                out.shape == large.shape and out.dtype == large.dtype)):
        return None
    if isinstance(short, (int, float)) and not isinstance(short, bool):
        row = _number_row(large.dtype, short) if large.size else None
        return row if row is None or large.size >= LONG_ROW else row[:large.size]
    if type(short) is not np.ndarray or short.dtype != large.dtype or short.ndim > large.ndim:
        return None
    trailing = short.shape[next((k for k, n in enumerate(short.shape) if n != 1),
                                short.ndim):]
    if trailing != large.shape[large.ndim - len(trailing):]:
        return None
    period = max(short.size, 1)
    if period > LONG_ROW // 4 or period >= large.size:
        return None
    row = np.empty((min(large.size, LONG_ROW) // period, period), large.dtype)
    row[...] = short.reshape(period)
    return row.reshape(-1)


def sigmoid(x):
    """1 / (1 + exp(-x)) where user code spells it out (passes/composites.py): the same
    operations in the same order, so the same floats, but in one buffer, and its adjoint
    reads only the result."""
    if type(x) is not np.ndarray or not x.ndim or x.dtype.kind not in "fc":
        return 1.0 / (1.0 + np.exp(-x))
    y = np.negative(x)
    np.exp(y, out=y)
    y += 1.0
    return np.divide(1.0, y, out=y)


def silu(x, t):
    """x / t for t = 1 + exp(-x) computed just before: SiLU spelled x / (1 + exp(-x))
    (passes/composites.py), the same division. Its adjoint, g * (x - y + 1) / t, reads t
    and the result instead of also keeping exp(-x), with one division instead of two."""
    return x / t


def silu_by_reciprocal(x, t):
    """x * (1 / t) for t = 1 + exp(-x): SiLU spelled x * (1 / (1 + exp(-x))) or x times
    a sigmoid written out (passes/composites.py), the same operations. Its adjoint is
    silu's, from t and the result."""
    return x * (1 / t)


def max_shift(x, axis):
    """x.max(axis, keepdims=True) as the shift of a logsumexp, softmax or log-softmax
    (passes/composites.py): exp(x - shift) cannot overflow, and the result does not
    depend on the shift, so it carries no derivative (no rounding leftover sent back
    through the max)."""
    return x.max(axis=axis, keepdims=True)


def copied(x):
    """A copy of array `x`, for a returned derivative that would otherwise be an array
    the caller already holds (passes/owned_outputs.py); numbers, which nobody can
    change, come back as they are."""
    return x.copy() if hasattr(x, "copy") and hasattr(x, "shape") else x


def zeros_like(x):
    """A zero adjoint with the structure, shape and dtype of `x`."""
    if isinstance(x, float):
        return 0.0
    if isinstance(x, (bool, int, str)) or x is None:
        return None
    if isinstance(x, list):
        return [zeros_like(e) for e in x]
    if isinstance(x, tuple):
        return tuple(zeros_like(e) for e in x)
    if isinstance(x, dict):
        return {k: zeros_like(v) for k, v in x.items()}
    if hasattr(x, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.replace(x, **{f.name: zeros_like(getattr(x, f.name))
                                         for f in dataclasses.fields(x) if f.init})
    if hasattr(x, "dtype") and x.dtype.kind not in "fc":
        return None
    return x * 0 if not hasattr(x, "shape") else _zeros_array(x)


def _zeros_array(x):
    return np.zeros_like(x) if x.ndim else x * 0


def accumulate(a, b):
    """a + b for adjoints of containers (lists, tuples, dicts); None is zero."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, list):
        return [accumulate(x, y) for x, y in zip(a, b)]
    if isinstance(a, tuple):
        return tuple(accumulate(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: accumulate(a[k], b.get(k)) for k in a}
    return a + b


def unindex(g, x, index):
    """The adjoint of `x[index]`: `g` scattered into zeros shaped like `x`.

    Repeated integer indices accumulate (np.add.at semantics), so gathers with
    duplicates get the right gradient.
    """
    if isinstance(x, dict):
        out = {k: zeros_like(v) for k, v in x.items()}
        out[index] = accumulate(out[index], g)
        return out
    if isinstance(x, (list, tuple)):
        out = [zeros_like(e) for e in x]
        if isinstance(index, slice):
            positions = range(len(x))[index]
            for i, gi in zip(positions, g):
                out[i] = accumulate(out[i], gi)
        else:
            out[index] = accumulate(out[index], g)
        if hasattr(x, "_fields"):
            return tuple(out)                # namedtuple results (EighResult, ...)
        return type(x)(out) if isinstance(x, tuple) else out
    out = _zeros_array(np.asarray(x)) if not hasattr(x, "shape") else _zeros_array(x)
    if is_basic_index(index):
        out[index] = g
    else:
        scatter_add(out, index, g)
    return out


def array_module(x):
    """The module that owns array `x`: CuPy for a CuPy array, else NumPy. Helpers call
    it only once `type(x) is np.ndarray` has failed, so the NumPy path pays no call."""
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np


def _device_index(index, xp):
    """`index` with its host arrays and lists on the device (CuPy's scatter-add takes
    no NumPy index arrays)."""
    if isinstance(index, tuple):
        return tuple(_device_index(p, xp) for p in index)
    return xp.asarray(index) if isinstance(index, (np.ndarray, list)) else index


def _first_device_array(x):
    if isinstance(x, (list, tuple)):
        for e in x:
            found = _first_device_array(e)
            if found is not None:
                return found
        return None
    return x if type(x) is not np.ndarray and hasattr(x, "__cuda_array_interface__") else None


def _sequence_array(x):
    """A (nested) list or tuple as one array: on the device, stacked, when it holds CuPy
    arrays (NumPy cannot convert them: it would need an implicit copy to the host)."""
    device = _first_device_array(x)
    if device is None:
        return np.asarray(x)
    xp = array_module(device)

    def nested(e):
        return xp.stack([nested(i) for i in e]) if isinstance(e, (list, tuple)) \
            else xp.asarray(e)
    return nested(x)


def _eye(n, like):
    """The n x n identity with the dtype and on the device of `like`."""
    xp = np if type(like) is np.ndarray else array_module(like)
    return xp.eye(n, dtype=like.dtype)


def scatter_add(out, index, g):
    """`np.add.at(out, index, g)` (on CuPy, cupyx.scatter_add, its equivalent). A gather of whole rows by one integer array (an
    embedding lookup) sums the repeated rows by sorting and `np.add.reduceat` instead:
    about 9x faster than np.add.at for a 1600-token batch of 64-wide rows."""
    if type(out) is not np.ndarray and array_module(out) is not np:
        import cupyx
        cupyx.scatter_add(out, _device_index(index, array_module(out)), g)
        return
    if not (out.ndim > 1 and isinstance(index, np.ndarray)
            and index.dtype.kind in "iu" and index.size
            and index.size * out.size >= 4096 * out.shape[0]):
        np.add.at(out, index, g)
        return
    n = out.shape[0]
    rows = index.reshape(-1)
    if rows.min() < -n:
        raise IndexError(f"index {rows.min()} is out of bounds for axis 0 with size {n}")
    rows = np.where(rows < 0, rows + n, rows)
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    values = np.broadcast_to(g, index.shape + out.shape[1:]).reshape(
        (rows.size,) + out.shape[1:])[order]
    out[ordered[starts]] += np.add.reduceat(values, starts, axis=0)


def inverse_axes(axes):
    """The axes that undo `transpose(axes)` (negative axes count from the end), as a
    tuple of ints: CuPy takes no array of axes."""
    inverse = [0] * len(axes)
    for position, axis in enumerate(axes):
        inverse[axis % len(axes)] = position
    return tuple(inverse)


def is_basic_index(index):
    """Ints, slices, None and Ellipsis: an index that selects every place at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer))
               for p in parts)


def index_update(x, index, v):
    """`x[index] = v` as a new array: the functional form of an in-place update."""
    if isinstance(x, list):
        out = list(x)
        out[index] = v
        return out
    return write_at(x.copy(), index, v)


def write_at(x, index, v):
    """`x[index] = v` in place, where the last of repeated integer-index writes wins on
    every backend: NumPy's rule, which CuPy leaves open (its writes race)."""
    if type(x) is np.ndarray or is_basic_index(index):
        x[index] = v
        return x
    xp = array_module(x)
    order, winner = _repeated_writes(x, index, xp)
    values = xp.broadcast_to(xp.asarray(v, dtype=x.dtype), order.shape).reshape(-1)
    x[index] = values[winner.reshape(-1)].reshape(order.shape)   # one value per place
    return x


def push(stack, value):
    stack.append(value)
    return stack


def fresh_tape(tape):
    """A copy of a loop tape (and of the tapes of inner loops inside it) for one run of a
    pullback: popping it leaves the original for the next call of the same pullback."""
    return [fresh_tape(entry) if type(entry) is list else entry for entry in tape]


def raise_error(exc):
    raise exc


def unreduce(g, x, axis=None, keepdims=False):
    """Spread the adjoint of a reduction over `axis` back over the shape of `x`.

    Returns a fresh array with the dtype of `x` (a Python float for a float `x`)."""
    if isinstance(x, (list, tuple)):
        x = _sequence_array(x)
    shape = np.shape(x)
    if not shape and not hasattr(x, "dtype"):
        return g if type(g) in (float, np.ndarray) or not hasattr(g, "shape") else float(g)
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = sorted(a % len(shape) for a in axes)
        kept = list(np.shape(g))
        for a in axes:
            kept.insert(a, 1)
        g = g.reshape(kept) if hasattr(g, "reshape") else np.reshape(g, kept)
    dtype = getattr(x, "dtype", None)
    out = np.empty_like(x, dtype if dtype is not None and dtype.kind in "fc" else   # x's device
                        np.result_type(g, 1.0), shape=shape)
    out[...] = g
    return out


def spread(t, z):
    """The tangent `t` of one operand of a sum `z`, with z's shape and dtype: `t` itself
    when it has them, else a read-only broadcast view (no copy); a number is filled in."""
    dtype = getattr(z, "dtype", None)
    if dtype is None:
        return t
    if not hasattr(t, "shape"):
        return np.full_like(z, t)                     # z's device
    if t.dtype != dtype:
        t = t.astype(dtype)
    return t if t.shape == z.shape else np.broadcast_to(t, z.shape)


def transposed_product_wins(g, b):
    """Whether `(b @ g.T).T` plus its copy to C order beats `g @ b.T` (2-D g and b).

    OpenBLAS (0.3.31, float32, 1 or 2 threads) handles a transposed operand with few
    rows better than a transposed large one: with at most 32 rows in g, fewer than b's,
    and b of 64K entries or more, 5-20% faster (W6's (32, 1024) by (256, 1024): 10%).
    From 48 rows on, or for small b, the copy costs more than it saves (W4's (128, 512)
    by (512, 512): 3-15% slower)."""
    return g.shape[0] <= 32 and g.shape[0] < b.shape[0] <= g.shape[1] and \
        b.shape[0] * b.shape[1] >= 1 << 16


def matmul_left(g, a, b):
    """The adjoint of `a` in `a @ b`, for every rank NumPy's matmul accepts: `g @ b.T`,
    or `(b @ g.T).T` copied to C order where transposed_product_wins (mixed C and Fortran
    operands make later elementwise ops up to 10x slower). A stack of matrices times one
    matrix is one 2-D product, not a loop of small ones."""
    if a.ndim == 2 and b.ndim == 2:          # unbroadcast: keeps a's dtype in mixed precision
        if transposed_product_wins(g, b):
            return unbroadcast((b @ g.T).T.copy(), a)
        return unbroadcast(g @ b.T, a)
    if a.ndim > 2 and b.ndim == 2:
        return unbroadcast((g.reshape(-1, g.shape[-1]) @ b.T).reshape(a.shape), a)
    if a.ndim == 1 and b.ndim == 1:
        return unbroadcast(g * b, a)
    if a.ndim == 1 and b.ndim == 2:          # a vector times a matrix
        return unbroadcast(b @ g, a)
    if b.ndim == 1:
        return unbroadcast(g[..., None] * b, a)
    if a.ndim == 1:
        return unbroadcast((g[..., None, :] @ b.swapaxes(-1, -2))[..., 0, :], a)
    return unbroadcast(g @ b.swapaxes(-1, -2), a)


def matmul_right(g, a, b):
    """The adjoint of `b` in `a @ b`; a stack of matrices `a` is one 2-D product."""
    if a.ndim == 2 and b.ndim == 2:
        return unbroadcast(a.T @ g, b)
    if a.ndim > 2 and b.ndim == 2:
        return unbroadcast(a.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1]), b)
    if a.ndim == 1 and b.ndim == 1:
        return unbroadcast(g * a, b)
    if a.ndim == 1:
        return unbroadcast(a[:, None] * g[..., None, :], b)
    if b.ndim == 1:
        return unbroadcast((a.swapaxes(-1, -2) @ g[..., None])[..., 0], b)
    return unbroadcast(a.swapaxes(-1, -2) @ g, b)


def dot_left(g, a, b):
    """The adjoint of `a` in `np.dot(a, b)` (scalars, vectors and matrices)."""
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return unbroadcast(g * b, a)
    if a.ndim > 2 or b.ndim > 2:
        return unbroadcast(np.tensordot(g, b, axes=(tuple(range(a.ndim - 1, g.ndim)),
                                                    tuple(i for i in range(b.ndim)
                                                          if i != b.ndim - 2))), a)
    return matmul_left(g, a, b)


def dot_right(g, a, b):
    """The adjoint of `b` in `np.dot(a, b)`."""
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return unbroadcast(g * a, b)
    if a.ndim > 2 or b.ndim > 2:
        moved = np.tensordot(a, g, axes=(tuple(range(a.ndim - 1)), tuple(range(a.ndim - 1))))
        return unbroadcast(np.moveaxis(moved, 0, -2) if b.ndim > 1 else moved, b)
    return matmul_right(g, a, b)


def array_adjoint(g, x):
    """The adjoint of `np.array(x)` for `x` a (nested) list or tuple of numbers/arrays."""
    if isinstance(x, (list, tuple)):
        return [array_adjoint(gi, xi) for gi, xi in zip(g, x)]
    return unbroadcast(g, x)


def unstack(g, count, axis=0):
    """The adjoint of `np.stack` of `count` arrays: the slices of `g` along `axis`.

    When the slices would read g in runs shorter than 256 bytes (stacking on an inner
    axis, as an im2col does) they come from one contiguous copy, which their consumers
    (scatter-adds into shifted windows) read about 3x faster."""
    axis = axis % g.ndim
    moved = np.moveaxis(g, axis, 0)
    if 0 < axis < g.ndim - 1 and g.flags.c_contiguous and \
            g.strides[axis] < 256 and moved.size > count:
        moved = moved.copy()
    return [moved[i] for i in range(count)]


def unconcatenate(g, parts, axis=0):
    """The adjoint of `np.concatenate(parts, axis)`: `g` cut back into the parts."""
    sizes = [np.shape(p)[axis] for p in parts]
    cuts = np.cumsum(sizes)[:-1]
    return list(np.split(g, cuts, axis=axis))


def clip_mask(x, low, high):
    """Where `np.clip` passes its input through (the derivative is 1 there)."""
    inside = np.ones_like(x, dtype=bool)             # on x's device
    if low is not None:
        inside = inside & (x >= low)
    if high is not None:
        inside = inside & (x <= high)
    return inside


def cast_like(g, x):
    """An adjoint cast back to the dtype of `x` (None for integer `x`)."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return g if isinstance(x, float) else None
    if dtype.kind not in "fc":
        return None
    return g.astype(dtype, copy=False) if hasattr(g, "astype") else dtype.type(g)


def sum_items_adjoint(g, items):
    """The adjoint of the builtin `sum(items)` over a list or an array's rows."""
    if isinstance(items, (list, tuple)):
        return [unbroadcast(g, item) for item in items]
    return np.broadcast_to(g, np.shape(items))


def with_fields(obj, **fields):
    """A copy of `obj` (dataclass or plain object) with some fields replaced: its adjoint."""
    import copy
    import dataclasses
    if isinstance(obj, tuple) and hasattr(obj, "_replace"):        # a namedtuple
        return obj._replace(**fields)
    if dataclasses.is_dataclass(obj):
        init = {f.name for f in dataclasses.fields(obj) if f.init}
        new = dataclasses.replace(obj, **{k: v for k, v in fields.items() if k in init})
        for k, v in fields.items():
            if k not in init:
                object.__setattr__(new, k, v)
        return new
    new = copy.copy(obj)
    for k, v in fields.items():
        setattr(new, k, v)
    return new


# --------------------------------------------------------------------------------------
# NumPy coverage helpers (rules/ufuncs, reductions, shape, indexing, linalg, creation).
# Like the helpers above they work on the arrays' own methods and NumPy functions that
# dispatch on their arguments, so the same text runs on CuPy arrays.
# --------------------------------------------------------------------------------------
def _arr(g, *like):
    """A Python number adjoint (the seed of a 0-d output) as a 0-d array, on the device
    of the first CuPy array among `like` (CuPy refuses a host 0-d array as an operand)."""
    if hasattr(g, "ndim"):
        return g
    for x in like:
        if type(x) is np.ndarray or not hasattr(x, "__cuda_array_interface__"):
            continue                   # (read as source too: hvp of a helper folds this)
        return array_module(x).asarray(g)
    return np.asarray(g)


def _axes_tuple(axis, ndim):
    """`axis` (None, int or tuple, negatives allowed) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        return tuple(sorted(int(a) % ndim for a in axis)) if ndim else ()
    return (int(axis) % ndim,) if ndim else ()


def _float_like(g, x):
    """`g` as an array with the floating dtype of `x` (adjoints keep their primal's dtype)."""
    dtype = getattr(x, "dtype", None)
    if not hasattr(g, "dtype"):
        xp = np if type(x) is np.ndarray or not hasattr(x, "shape") else array_module(x)
        g = xp.asarray(g, dtype=dtype if dtype is not None and dtype.kind in "fc" else None)
    elif dtype is not None and dtype.kind in "fc" and g.dtype != dtype:
        g = g.astype(dtype)
    return g


def prod_adjoint(g, x, axis=None, keepdims=False):
    """The adjoint of `np.prod(x, axis)`: `g` times the product of all *other* entries.

    Computed with exclusive cumulative products from both ends, never by dividing by
    `x`, so it is exact when `x` contains zeros (one zero: only that entry gets a
    non-zero adjoint; two or more: all adjoints are zero).
    """
    x = np.asarray(x) if not hasattr(x, "shape") else x
    g = unreduce(g, x, axis, keepdims)
    if x.ndim == 0:
        return g * 1
    axes = _axes_tuple(axis, x.ndim)
    rest = [i for i in range(x.ndim) if i not in axes]
    perm = rest + list(axes)
    moved = x.transpose(perm)
    lead = moved.shape[:len(rest)]
    flat = moved.reshape(lead + (-1,))
    if flat.shape[-1] == 0:
        return g * 1
    one = flat[..., :1] * 0 + 1
    left = np.concatenate([one, flat[..., :-1].cumprod(axis=-1)], axis=-1)
    right = np.concatenate([flat[..., :0:-1].cumprod(axis=-1)[..., ::-1], one], axis=-1)
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    others = (left * right).reshape(moved.shape).transpose(inverse)
    return g * others


def cumprod_adjoint(g, y, x, axis=None):
    """The adjoint of `y = np.cumprod(x, axis)`, exact with zeros in `x` (no division).

    x_bar[k] = y[k-1] * S[k] with S[k] = g[k] + x[k+1] * S[k+1] (S past the end is 0):
    one reverse sweep along the axis, vectorised over the others.
    """
    g = _arr(g)
    if axis is None:
        flat = x.reshape(-1) if hasattr(x, "reshape") else np.ravel(x)
        return cumprod_adjoint(g, y, flat, 0).reshape(np.shape(x))
    n = x.shape[axis]
    gm = np.moveaxis(g, axis, 0)
    ym = np.moveaxis(y, axis, 0)
    xm = np.moveaxis(x, axis, 0)
    out = gm * 0
    if n == 0:
        return np.moveaxis(out, 0, axis)
    s = gm[n - 1] * 1
    for k in range(n - 1, -1, -1):
        if k < n - 1:
            s = gm[k] + xm[k + 1] * s
        out[k] = s * ym[k - 1] if k > 0 else s
    return np.moveaxis(out, 0, axis)


def extremum_share(g, y, x, axis=None, keepdims=False, like=None, at=None):
    """The adjoint of `max`/`min` over `axis`: ties share the adjoint equally.

    `x == y` and the product with `g` broadcast from the reduced shape, so neither y nor
    g is copied to full size; g is divided by the tie count on the reduced shape. Short
    windows (pooling) go one window offset at a time, each a strided slice of x compared
    and written with the reduced shape's long inner loops. `like` and `at` (given by
    passes/placed_outputs.py) ask for unindex(result, like, at), the adjoint of the crop
    that x came from: the result is then written straight into those zeros."""
    x = _arr(x)
    axes = _axes_tuple(axis, x.ndim)
    kept = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    y = y.reshape(kept) if hasattr(y, "reshape") else y
    g = g.reshape(kept) if hasattr(g, "reshape") else g
    offsets = window_offsets(x.shape, axes)
    if offsets is None or type(x) is not np.ndarray:
        chosen = x == y
        return _placed(chosen * (g / window_sum(chosen, axes, np.result_type(x))), like, at)
    chosen = [x[k] == y for k in offsets]
    count = chosen[0].view(np.uint8).copy()          # small integers: exact in any dtype,
    for c in chosen[1:]:                             # and bytes add without a cast
        count += c.view(np.uint8)
    share = g / count.astype(np.result_type(x))
    whole, out = _place(x.shape, share.dtype, like, at)
    for k, c in zip(offsets, chosen):
        np.multiply(c, share, out=out[k])
    return _placed(out, like, at) if whole is None else whole


def window_offsets(shape, axes):
    """For a window of at most 8 entries over `axes`, not the leading ones: the index of
    each offset in it (the strided slices a pooling reads), else None. NumPy reduces
    short axes that are not in front one tiny inner loop at a time, up to 6x slower."""
    extents = [shape[a] for a in axes]
    entries = 1
    for n in extents:                        # not np.prod: 5 us a call, on every max adjoint
        entries *= n
    if not 0 < entries <= 8 or axes == tuple(range(len(axes))):
        return None
    out = []
    for offsets in np.ndindex(*extents):
        window = [slice(None)] * len(shape)
        for a, i in zip(axes, offsets):
            window[a] = slice(i, i + 1)
        out.append(tuple(window))
    return out


def window_sum(mask, axes, dtype):
    """`mask.sum(axes, keepdims=True, dtype=dtype)`, for short windows (pooling, a few
    columns) as a sum of strided slices."""
    offsets = window_offsets(mask.shape, axes)
    if offsets is None:
        return mask.sum(axis=axes, keepdims=True, dtype=dtype)
    total = mask[offsets[0]].astype(dtype)
    for k in offsets[1:]:
        total += mask[k]
    return total


def average_adjoint(g, y, a, weights, axis=None, keepdims=False):
    """Adjoints (a_bar, weights_bar) of `np.average(a, axis, weights)`."""
    w = weights if hasattr(weights, "ndim") else np.asarray(weights)     # a list of weights
    if w.ndim != a.ndim and w.ndim == 1 and axis is not None:
        shape = [1] * a.ndim
        shape[int(axis) % a.ndim] = w.shape[0]
        w = w.reshape(shape)
    total = np.broadcast_to(w, a.shape).sum(axis=_axes_tuple(axis, a.ndim), keepdims=True)
    g_full = unreduce(g, a, axis, keepdims)
    y_full = unreduce(y, a, axis, keepdims)
    a_bar = g_full * w / total
    w_bar = unbroadcast(g_full * (a - y_full) / total, w).reshape(np.shape(weights))
    return _float_like(a_bar, a), _float_like(w_bar, weights)


def untake(g, x, indices, axis=None, mode="raise"):
    """The adjoint of `np.take(x, indices, axis)`: scatter-add (repeated indices add up)."""
    g = _arr(g)
    out = _zeros_array(np.asarray(x)) if not hasattr(x, "shape") else _zeros_array(x)
    indices = np.asarray(indices) if not hasattr(indices, "shape") else indices
    n = out.size if axis is None else out.shape[int(axis) % out.ndim]
    if mode == "clip":
        indices = indices.clip(0, n - 1)
    elif n:
        indices = indices % n
    if axis is None:
        scatter_add(out.reshape(-1), indices, g)
    else:
        scatter_add(out, (slice(None),) * (int(axis) % out.ndim) + (indices,), g)
    return out


def untake_along_axis(g, x, indices, axis):
    """The adjoint of `np.take_along_axis(x, indices, axis)`: scatter-add into zeros."""
    g = _arr(g)
    out = _zeros_array(x)
    if axis is None:
        scatter_add(out.reshape(-1), indices, g)
        return out
    axis = int(axis) % out.ndim
    index = []
    for d in range(out.ndim):
        if d == axis:
            index.append(indices % out.shape[d] if out.shape[d] else indices)
        else:
            shape = [1] * out.ndim
            shape[d] = out.shape[d]
            index.append(np.arange(out.shape[d]).reshape(shape))
    scatter_add(out, tuple(index), g)
    return out


def unsort(g, x, axis=-1):
    """The adjoint of `np.sort(x, axis)`: `g` sent back through the sorting permutation.

    Tied values keep the order of a stable argsort, so each output position's adjoint
    goes to exactly one of the tied inputs.
    """
    g = _arr(g)
    if axis is None:
        flat = x.reshape(-1)
        order = flat.argsort(kind="stable")
        return untake_along_axis(g, flat, order, 0).reshape(x.shape)
    order = x.argsort(axis=axis, kind="stable")
    return untake_along_axis(g, x, order, axis)


def _split_axis(axis, x):
    """The axis of hsplit ("h"), vsplit ("v") and dsplit ("d"), or `axis` itself."""
    if axis == "h":
        return 1 if np.ndim(x) > 1 else 0
    return {"v": 0, "d": 2}.get(axis, axis) if isinstance(axis, str) else axis


def split_parts(g_parts, x, axis=0):
    """The adjoint of `np.split`/`np.array_split` (and h/v/dsplit): the parts put back.

    `axis` may be "h", "v" or "d" for the hsplit/vsplit/dsplit conventions.
    """
    axis = _split_axis(axis, x)
    return np.concatenate(list(g_parts), axis=axis)


def stack_parts(g, parts, how):
    """The adjoint of hstack/vstack/dstack/column_stack/row_stack and concatenate(axis=None)."""
    shapes = [np.shape(p) for p in parts]
    if how == "flat":
        sizes = [int(np.prod(s)) for s in shapes]
        flat = g.reshape(-1)
        out, start = [], 0
        for s, n in zip(shapes, sizes):
            out.append(flat[start:start + n].reshape(s))
            start += n
        return out
    if how == "h":
        lifted = [s if len(s) else (1,) for s in shapes]
        axis = 0 if len(lifted[0]) == 1 else 1
    elif how == "column":
        lifted = [(s[0], 1) if len(s) == 1 else (s if len(s) else (1, 1)) for s in shapes]
        axis = 1
    elif how == "v":
        lifted = [s if len(s) >= 2 else ((1,) + s if len(s) == 1 else (1, 1)) for s in shapes]
        axis = 0
    else:  # "d"
        lifted = [s if len(s) >= 3 else ((1,) + s + (1,) if len(s) == 1 else
                                         (s + (1,) if len(s) == 2 else (1, 1, 1)))
                  for s in shapes]
        axis = 2
    out, start = [], 0
    for s, ls in zip(shapes, lifted):
        n = ls[axis]
        index = (slice(None),) * axis + (slice(start, start + n),)
        out.append(g[index].reshape(s))
        start += n
    return out


def untile(g, x, reps):
    """The adjoint of `np.tile(x, reps)`: the tiles summed onto one."""
    g = _arr(g)
    reps = (reps,) if isinstance(reps, (int, np.integer)) else tuple(reps)
    shape = np.shape(x)
    d = max(len(shape), len(reps))
    full = (1,) * (d - len(shape)) + tuple(shape)
    reps = (1,) * (d - len(reps)) + reps
    interleaved = []
    for r, n in zip(reps, full):
        interleaved += [r, n]
    summed = g.reshape(interleaved).sum(axis=tuple(range(0, 2 * d, 2)))
    return summed.reshape(shape)


def unrepeat(g, x, repeats, axis=None):
    """The adjoint of `np.repeat(x, repeats, axis)`: each run of copies summed."""
    g = _arr(g)
    shape = np.shape(x)
    if axis is None:
        base = np.asarray(x).reshape(-1) if not hasattr(x, "reshape") else x.reshape(-1)
        axis_ = 0
    else:
        base = x
        axis_ = int(axis) % len(shape)
    n = base.shape[axis_]
    if isinstance(repeats, (int, np.integer)) or np.ndim(repeats) == 0 or np.size(repeats) == 1:
        r = int(np.reshape(repeats, -1)[0]) if np.ndim(repeats) else int(repeats)
        moved = np.moveaxis(g, axis_, -1)
        summed = moved.reshape(moved.shape[:-1] + (n, r)).sum(axis=-1)
        out = np.moveaxis(summed, -1, axis_)
    else:
        if type(repeats) is not np.ndarray and hasattr(repeats, "__cuda_array_interface__"):
            repeats = repeats.get()             # a device constant: counts are host data
        owners = np.repeat(np.arange(n), repeats)
        out = untake(g, base, owners, axis_)
    return out.reshape(shape)


def unpad(g, x, pad_width, mode="constant"):
    """The adjoint of `np.pad(x, pad_width, mode)`.

    Constant mode slices the padding off; the copying modes (edge, reflect, symmetric,
    wrap) scatter-add every padded copy back to the entry it copies.
    """
    g = _arr(g)
    shape = np.shape(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int).reshape(
        (-1, 2) if np.size(pad_width) > 1 else (1, 1)), (len(shape), 2))
    if mode == "constant":
        index = tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, shape))
        return g[index] * 1
    if mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise NotImplementedError(f"np.pad mode {mode!r} has no derivative rule in diffsrc")
    ids = np.arange(int(np.prod(shape))).reshape(shape)
    owners = np.pad(ids, [(int(b), int(a)) for b, a in widths], mode=mode)
    out = _zeros_array(x).reshape(-1)
    scatter_add(out, owners.reshape(-1), g.reshape(-1))
    return out.reshape(shape)


def undiag(g, x, k=0):
    """The adjoint of `np.diag(x, k)` (both directions: vector -> matrix, matrix -> diagonal)."""
    g = _arr(g)
    if np.ndim(x) == 1:
        return np.diagonal(g, k) * 1
    return undiagonal(g, x, k, 0, 1)


def undiagonal(g, x, offset=0, axis1=0, axis2=1):
    """The adjoint of `np.diagonal(x, offset, axis1, axis2)`: `g` written on that diagonal."""
    g = _arr(g)
    out = _zeros_array(x)
    moved = np.moveaxis(out, (axis1, axis2), (-2, -1))
    n = g.shape[-1]
    i = np.arange(n)
    rows = i + max(-offset, 0)
    cols = i + max(offset, 0)
    moved[..., rows, cols] = g
    return out


def untrace(g, x, offset=0, axis1=0, axis2=1):
    """The adjoint of `np.trace(x, offset, axis1, axis2)`."""
    n = np.diagonal(x, offset, axis1, axis2).shape[-1]
    g = _float_like(g, x)
    return undiagonal(np.broadcast_to(g[..., None], g.shape + (n,)), x, offset, axis1, axis2)


def unslide(g, x, window_shape, axis=None):
    """The adjoint of `sliding_window_view(x, window_shape, axis)`: windows summed back.

    One vectorised add per position inside the window (9 for a 3x3 kernel).
    """
    g = _arr(g)
    window = (window_shape,) if isinstance(window_shape, (int, np.integer)) else \
        tuple(window_shape)
    ndim = np.ndim(x)
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        axes = tuple(int(a) % ndim for a in axes)
    out = _zeros_array(x)
    base = list(g.shape[:ndim])
    for offsets in np.ndindex(*window):
        region = [slice(None)] * ndim
        for a, o in zip(axes, offsets):
            start = region[a].start or 0
            region[a] = slice(start + o, start + o + base[a])
        out[tuple(region)] += g[(Ellipsis,) + tuple(offsets)]
    return out


def undiff(g, x, n=1, axis=-1):
    """The adjoint of `np.diff(x, n, axis)`."""
    g = _arr(g)
    axis = int(axis) % np.ndim(x)
    for _ in range(n):
        pad = [(0, 0)] * g.ndim
        pad[axis] = (1, 1)
        g = -np.diff(np.pad(g, pad), axis=axis)
    return g


def ndtuple(shift):
    """Negated roll shift (int or tuple of ints)."""
    if isinstance(shift, (tuple, list)):
        return tuple(-int(s) for s in shift)
    return -shift


# ------------------------------------------------------------------------------ linalg
def _mT(a):
    return a.swapaxes(-1, -2)


def tensordot_adjoint(g, a, b, axes=2, which=0):
    """The adjoint of `a` (which=0) or `b` (which=1) in `np.tensordot(a, b, axes)`."""
    g = _arr(g, a, b)
    if isinstance(axes, (int, np.integer)):
        a_axes = list(range(a.ndim - axes, a.ndim))
        b_axes = list(range(axes))
    else:
        a_axes, b_axes = axes
        a_axes = [a_axes] if isinstance(a_axes, (int, np.integer)) else list(a_axes)
        b_axes = [b_axes] if isinstance(b_axes, (int, np.integer)) else list(b_axes)
        a_axes = [int(i) % a.ndim for i in a_axes]
        b_axes = [int(i) % b.ndim for i in b_axes]
    a_free = [i for i in range(a.ndim) if i not in a_axes]
    b_free = [i for i in range(b.ndim) if i not in b_axes]
    na = len(a_free)
    if which == 0:
        # g: a_free + b_free; contract g's b_free dims with b's free dims
        r = np.tensordot(g, b, axes=(tuple(range(na, g.ndim)), tuple(b_free)))
        # r: a_free, then b's contracted axes in increasing order, each paired with an a axis
        order = a_free + [a_axes[b_axes.index(j)] for j in sorted(b_axes)]
    else:
        r = np.tensordot(a, g, axes=(tuple(a_free), tuple(range(na))))
        # r: a's contracted axes in increasing order (paired with b axes), then b_free
        order = [b_axes[a_axes.index(i)] for i in sorted(a_axes)] + b_free
    inverse = [0] * len(order)
    for i, p in enumerate(order):
        inverse[p] = i
    return r.transpose(inverse)


def inner_adjoint(g, a, b, which=0):
    """The adjoint of `a` (which=0) or `b` (which=1) in `np.inner(a, b)`."""
    g = _arr(g, a, b)
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        other = b if which == 0 else a
        return unbroadcast(g * other, a if which == 0 else b)
    if which == 0:
        return np.tensordot(g, b, axes=(tuple(range(a.ndim - 1, g.ndim)),
                                        tuple(range(b.ndim - 1))))
    return np.tensordot(g, a, axes=(tuple(range(a.ndim - 1)), tuple(range(a.ndim - 1))))


def kron_adjoint(g, a, b, which=0):
    """The adjoint of `a` (which=0) or `b` (which=1) in `np.kron(a, b)`."""
    g = _arr(g, a, b)
    sa, sb = np.shape(a), np.shape(b)
    d = max(len(sa), len(sb))
    fa = (1,) * (d - len(sa)) + tuple(sa)
    fb = (1,) * (d - len(sb)) + tuple(sb)
    interleaved = []
    for m, n in zip(fa, fb):
        interleaved += [m, n]
    g4 = g.reshape(interleaved)
    a_idx = list(range(0, 2 * d, 2))
    b_idx = list(range(1, 2 * d, 2))
    if which == 0:
        r = np.tensordot(g4, np.reshape(b, fb), axes=(tuple(b_idx), tuple(range(d))))
        return r.reshape(sa)
    r = np.tensordot(g4, np.reshape(a, fa), axes=(tuple(a_idx), tuple(range(d))))
    return r.reshape(sb)


def _einsum_parse(subscripts, shapes):
    """Explicit, ellipsis-free input and output subscripts of an einsum call."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        inputs, output = subscripts.split("->")
    else:
        inputs, output = subscripts, None
    inputs = inputs.split(",")
    used = set(subscripts) - set(".,->")
    spare = (c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used)
    ell_dims = 0
    for term, shape in zip(inputs, shapes):
        if "..." in term:
            ell_dims = max(ell_dims, len(shape) - (len(term) - 3))
    ell = "".join(next(spare) for _ in range(ell_dims))
    expanded = []
    for term, shape in zip(inputs, shapes):
        if "..." in term:
            k = len(shape) - (len(term) - 3)
            term = term.replace("...", ell[ell_dims - k:] if k else "")
        expanded.append(term)
    if output is None:
        counts = {}
        for term in expanded:
            for c in term:
                counts[c] = counts.get(c, 0) + 1
        named = "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell))
        output = ell + named
    else:
        output = output.replace("...", ell)
    return expanded, output, ell


def einsum_adjoint(g, subscripts, operands, which):
    """The adjoint of operand `which` of `np.einsum(subscripts, *operands)`.

    General subscripts: implicit or explicit output, ellipsis (with broadcasting),
    labels repeated inside one operand (diagonals, traces) and labels summed inside
    a single operand.
    """
    g = _arr(g, *operands)
    shapes = [np.shape(op) for op in operands]
    inputs, output, ell = _einsum_parse(subscripts, shapes)
    target = inputs[which]
    x = operands[which]
    sizes = {}
    for term, shape in zip(inputs, shapes):
        for c, n in zip(term, shape):
            if n != 1 or c not in sizes:
                sizes[c] = n
    unique = "".join(dict.fromkeys(target))
    others = [(t, op) for i, (t, op) in enumerate(zip(inputs, operands)) if i != which]
    available = set(output).union(*[set(t) for t, _ in others]) if others else set(output)
    kept = "".join(c for c in unique if c in available)
    spec = ",".join([output] + [t for t, _ in others]) + "->" + kept
    r = np.einsum(spec, g, *[op for _, op in others])
    if len(kept) < len(unique):
        shape_kept = list(r.shape)
        for pos, c in enumerate(unique):
            if c not in kept:
                shape_kept.insert(pos, 1)
        r = r.reshape(shape_kept)
        r = np.broadcast_to(r, tuple(sizes[c] for c in unique))
    if len(unique) < len(target):
        # repeated labels: place r on the diagonal(s) via Kronecker deltas
        letters = iter(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       if c not in set(target) | set(output) | set(ell))
        renamed, deltas, seen = "", [], set()
        for c in target:
            if c in seen:
                fresh = next(letters)
                renamed += fresh
                deltas.append(c + fresh)
            else:
                seen.add(c)
                renamed += c
        eyes = [_eye(sizes[d[0]], r) for d in deltas]
        r = np.einsum(",".join([unique] + deltas) + "->" + renamed, r, *eyes)
    if r.shape != np.shape(x):
        axes = tuple(i for i, (m, n) in enumerate(zip(np.shape(x), r.shape)) if m == 1 and n != 1)
        r = r.sum(axis=axes, keepdims=True)
    return _float_like(r, x) * 1


def inv_adjoint(g, y):
    """The adjoint of `y = np.linalg.inv(a)`: -y^T g y^T (batched)."""
    g = _arr(g)
    yt = _mT(y)
    return -(yt @ g @ yt)


def solve_b_adjoint(g, a, b):
    """The adjoint of `b` in `x = np.linalg.solve(a, b)`: solve(a^T, g), reduced to b."""
    at = _mT(a)
    if np.ndim(b) == 1:
        r = np.linalg.solve(at, g[..., None])[..., 0]
    else:
        r = np.linalg.solve(at, g)
    return unbroadcast(r, b)


def solve_a_adjoint(b_bar_full, x, a):
    """The adjoint of `a` in `x = np.linalg.solve(a, b)`: -b_bar x^T, reduced to a."""
    if np.ndim(x) == np.ndim(a) - 1:
        r = -(b_bar_full[..., :, None] * x[..., None, :])
    else:
        r = -(b_bar_full @ _mT(x))
    return unbroadcast(r, a)


def solve_b_full(g, a, b):
    """solve(a^T, g) before reduction to b's shape (shared by both adjoints of solve)."""
    at = _mT(a)
    if np.ndim(b) == 1 and np.ndim(g) >= 1:
        return np.linalg.solve(at, g[..., None])[..., 0]
    return np.linalg.solve(at, g)


def det_adjoint(g, y, a):
    """The adjoint of `y = np.linalg.det(a)`: g * y * inv(a)^T (batched)."""
    g = _arr(g)
    g = _float_like(g, a)
    return (g * y)[..., None, None] * _mT(np.linalg.inv(a))


def slogdet_adjoint(g, a):
    """The adjoint of `a` in `sign, logabsdet = np.linalg.slogdet(a)` (sign carries none)."""
    logdet_bar = _float_like(g[1], a)
    return logdet_bar[..., None, None] * _mT(np.linalg.inv(a))


def _tril_convention(sym, lower=True):
    """A symmetric adjoint written onto the triangle NumPy reads (lower or upper)."""
    n = sym.shape[-1]
    eye = _eye(n, sym)
    tri = np.tril(sym) if lower else np.triu(sym)
    return 2 * tri - sym * eye


def cholesky_adjoint(g, L, upper=False):
    """The adjoint of `L = np.linalg.cholesky(a)` (Murray 2016, no explicit inverse).

    NumPy reads only the lower triangle of `a`; the adjoint is returned on that
    triangle (off-diagonal entries doubled, upper triangle zero), which is the exact
    derivative of the function NumPy computes. Summed with its transpose it is the
    symmetric gradient other libraries return.
    """
    if upper:
        L = _mT(L)
        g = _mT(g)
    n = L.shape[-1]
    eye = _eye(n, L)
    phi = np.tril(_mT(L) @ g)
    phi = phi - 0.5 * phi * eye
    # S = L^{-T} phi L^{-1}
    tmp = np.linalg.solve(_mT(L), phi)
    s = _mT(np.linalg.solve(_mT(L), _mT(tmp)))
    sym = 0.5 * (s + _mT(s))
    return _tril_convention(sym, lower=not upper)


def eigh_adjoint(g, w, v, uplo="L"):
    """The adjoint of `w, v = np.linalg.eigh(a, UPLO)`.

    Returned on the triangle NumPy reads (see cholesky_adjoint). Pairs of equal
    eigenvalues contribute nothing to the eigenvector part (1 / (w_j - w_i) is taken
    as 0 there), so eigenvalue-only adjoints (eigvalsh, symmetric functions of w)
    are exact even for degenerate spectra; eigenvector adjoints need distinct ones.
    """
    w_bar, v_bar = g
    n = w.shape[-1]
    eye = _eye(n, w)
    diff = w[..., None, :] - w[..., :, None]
    distinct = diff != 0
    f = np.where(distinct, 1 / np.where(distinct, diff, 1), 0)
    inner = w_bar[..., None, :] * eye + f * (_mT(v) @ v_bar)
    full = v @ inner @ _mT(v)
    sym = 0.5 * (full + _mT(full))
    return _tril_convention(sym, lower=uplo.upper() == "L")


def norm_adjoint(g, y, x, ord=None, axis=None, keepdims=False):
    """The adjoint of `np.linalg.norm(x, ord, axis, keepdims)`.

    Vector norms: 2 (default), 1, inf, -inf, 0 (zero derivative) and any other p;
    matrix norms: 'fro', 'nuc', 2, -2, 1, -1, inf, -inf. Kinks: the 2-norm's
    x/|x| is taken as 0 at x == 0, |x| as sign(x) (0 at 0); ties of max/min (inf
    norms, 1-norms of matrices) share the adjoint equally; singular values of the
    2/-2/nuc norms are assumed distinct.
    """
    x = np.asarray(x) if not hasattr(x, "shape") else x
    nd = x.ndim
    if axis is None:
        axes = tuple(range(nd))
        matrix = ord is not None and nd == 2
    else:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        axes = tuple(int(a) % nd for a in axes)
        matrix = len(axes) == 2
    g_full = unreduce(g, x, axes, keepdims)
    y_full = unreduce(y, x, axes, keepdims)
    if ord is None or ord == "fro" or (not matrix and ord == 2):
        return g_full * x / (y_full + (y_full == 0))
    a = abs(x)
    if not matrix:
        if ord == 1:
            return g_full * np.sign(x)
        if ord == np.inf or ord == -np.inf:
            best = a.max(axis=axes, keepdims=True) if ord == np.inf else \
                a.min(axis=axes, keepdims=True)
            chosen = a == best
            count = chosen.sum(axis=axes, keepdims=True, dtype=x.dtype)
            return g_full * np.sign(x) * chosen / count
        if ord == 0:
            return g_full * 0
        p = float(ord)
        return g_full * np.sign(x) * (a / (y_full + (y_full == 0))) ** (p - 1)
    r, c = axes
    xm = np.moveaxis(x, (r, c), (-2, -1))
    gm = np.moveaxis(g_full, (r, c), (-2, -1))
    if ord == "nuc" or ord == 2 or ord == -2:
        u, s, vh = np.linalg.svd(xm, full_matrices=False)
        if ord == "nuc":
            dm = u @ vh
        elif ord == 2:
            dm = u[..., :, :1] @ vh[..., :1, :]
        else:
            dm = u[..., :, -1:] @ vh[..., -1:, :]
        out = gm * dm
    elif ord == 1 or ord == -1 or ord == np.inf or ord == -np.inf:
        along = -2 if ord in (1, -1) else -1      # 1: column sums, inf: row sums
        across = -1 if along == -2 else -2
        sums = abs(xm).sum(axis=along, keepdims=True)
        best = sums.max(axis=across, keepdims=True) if ord in (1, np.inf) else \
            sums.min(axis=across, keepdims=True)
        chosen = sums == best
        count = chosen.sum(axis=across, keepdims=True, dtype=x.dtype)
        out = gm * np.sign(xm) * chosen / count
    else:
        raise NotImplementedError(f"np.linalg.norm ord={ord!r} over two axes has no rule")
    return _float_like(np.moveaxis(out, (-2, -1), (r, c)), x)


def linspace_adjoint(g, start, stop, num=50, endpoint=True, axis=0, which=0):
    """The adjoint of `start` (which=0) or `stop` (which=1) in `np.linspace`."""
    g = _arr(g)
    div = (num - 1) if endpoint else num
    xp = np if type(g) is np.ndarray else array_module(g)
    t = xp.arange(num) / div if div > 0 and num != 1 else xp.zeros(num)
    shape = [1] * g.ndim
    axis = int(axis) % g.ndim if g.ndim else 0
    if g.ndim:
        shape[axis] = num
    t = t.reshape(shape).astype(g.dtype) if g.ndim else t
    weight = (1 - t) if which == 0 else t
    r = (g * weight).sum(axis=axis) if g.ndim else g * weight
    other = start if which == 0 else stop
    return unbroadcast(r, other)


def item_adjoint(g, x):
    """The adjoint of `x.item()` / `float(x)` for a size-1 array: `g` shaped like x (a
    fresh array, also for a 0-d x); for a number x, `g` itself."""
    if not hasattr(x, "shape"):
        return g
    return _float_like(g, x).reshape(x.shape).copy()


def clip_bound_adjoint(g, x, low, high, which):
    """The adjoint of bound `low` (which=0) or `high` (which=1) of `np.clip(x, low, high)`."""
    bound = low if which == 0 else high
    if bound is None:
        return None
    if which == 0:
        mask = x < low
        if high is not None:
            mask = mask & ~(x > high)
    else:
        mask = x > high
    return unbroadcast(g * mask, bound)


def unpermute(g, x, y, axis=-1):
    """The adjoint of a permutation along `axis` (np.sort, np.partition): `y` holds the
    entries of `x` rearranged; each adjoint goes back to the entry it came from (tied
    values are matched in stable order)."""
    g = _arr(g)
    if axis is None:
        flat = x.reshape(-1)
        return unpermute(g, flat, y, 0).reshape(x.shape)
    order_x = x.argsort(axis=axis, kind="stable")
    order_y = y.argsort(axis=axis, kind="stable")
    if type(order_x) is np.ndarray:
        source = np.empty_like(order_x)
        np.put_along_axis(source, order_y, order_x, axis=axis)
    else:
        source = np.take_along_axis(order_x, order_y.argsort(axis=axis), axis=axis)
    return untake_along_axis(g, x, source, axis)


def select_adjoint(g, condlist, choicelist, default, which):
    """Adjoints of `np.select(condlist, choicelist, default)`: choice k gets the adjoint
    where condition k is the first true one; `default` where none is (which=-1)."""
    g = _arr(g)
    taken = None
    out = []
    for cond, choice in zip(condlist, choicelist):
        first = cond if taken is None else cond & ~taken
        taken = cond if taken is None else taken | cond
        out.append(unbroadcast(g * first, choice))
    if which == -1:
        rest = g if taken is None else g * ~taken
        return unbroadcast(rest, default)
    return out


def rollaxis_adjoint(g, x, axis, start=0):
    """The adjoint of `np.rollaxis(x, axis, start)`: the inverse move."""
    n = np.ndim(x)
    axis = int(axis) % n
    start = int(start) + n if start < 0 else int(start)
    dest = start - 1 if axis < start else start
    return np.moveaxis(g, dest, axis)


def cross_adjoint(g, a, b, which):
    """Adjoints of `np.cross(a, b)` over the last axis (2- or 3-vectors), broadcasting."""
    g = _arr(g)
    if np.shape(a)[-1] == 3 and np.shape(b)[-1] == 3:
        r = np.cross(b, g) if which == 0 else np.cross(g, a)
        return unbroadcast(r, a if which == 0 else b)
    if np.shape(a)[-1] == 2 and np.shape(b)[-1] == 2:
        gz = g[..., None]
        if which == 0:
            r = gz * np.stack([b[..., 1], -b[..., 0]], axis=-1)
            return unbroadcast(r, a)
        r = gz * np.stack([-a[..., 1], a[..., 0]], axis=-1)
        return unbroadcast(r, b)
    raise NotImplementedError("np.cross of mixed 2- and 3-vectors has no rule in diffsrc")


def quantile_adjoint(g, x, q, axis=None, keepdims=False, method="linear"):
    """The adjoint of `np.quantile(x, q, axis, keepdims=keepdims)` (linear interpolation:
    also np.median and np.percentile with q / 100). Each output is a weighted sum of two
    order statistics; their weights go back through the sort."""
    g = _arr(g)
    if method != "linear":
        raise NotImplementedError(f"np.quantile method={method!r} has no rule in diffsrc")
    nd = np.ndim(x)
    axes = _axes_tuple(axis, nd)
    rest = [i for i in range(nd) if i not in axes]
    perm = rest + list(axes)
    moved = x.transpose(perm)
    lead = moved.shape[:len(rest)]
    flat = moved.reshape(lead + (-1,))
    n = flat.shape[-1]
    order = flat.argsort(axis=-1, kind="stable")
    qs = np.asarray(q if array_module(q) is np else q.get(), dtype=float).reshape(-1)
    g = _float_like(g, x)
    # g: q.shape + reduced shape (keepdims: ones at the reduced axes)
    gq = g.reshape((qs.size,) + lead) if not keepdims else \
        g.reshape((qs.size,) + tuple(g.shape[np.ndim(q):][i] for i in rest))
    s_bar = flat * 0
    for k, qk in enumerate(qs):
        v = qk * (n - 1)
        lo = int(np.floor(v))
        hi = min(lo + 1, n - 1)
        frac = v - lo
        s_bar[..., lo] += gq[k] * (1 - frac)
        if frac:
            s_bar[..., hi] += gq[k] * frac
    if type(flat) is np.ndarray:
        out = flat * 0
        np.put_along_axis(out, order, s_bar, axis=-1)
    else:
        out = np.take_along_axis(s_bar, order.argsort(axis=-1), axis=-1)
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return out.reshape(moved.shape).transpose(inverse)


def nanvar_adjoint(g, x, axis=None, ddof=0, keepdims=False, std=None):
    """The adjoint of np.nanvar (or np.nanstd when `std` is its output): NaNs get none."""
    valid = ~np.isnan(x)
    count = valid.sum(axis=_axes_tuple(axis, x.ndim), keepdims=True, dtype=x.dtype)
    centered = np.where(valid, x - np.nanmean(x, axis=axis, keepdims=True), 0)
    g = unreduce(g, x, axis, keepdims)
    if std is not None:
        g = g / (2 * unreduce(std, x, axis, keepdims))
    return g * 2 * centered / (count - ddof)


def cov_adjoint(g, m, rowvar=True, bias=False, ddof=None):
    """The adjoint of `np.cov(m, rowvar=rowvar, bias=bias, ddof=ddof)` (no y, no weights)."""
    g = _arr(g)
    x = m if np.ndim(m) > 1 else m.reshape(1, -1)
    if not rowvar and np.ndim(m) > 1:
        x = x.T
    n = x.shape[1]
    if ddof is None:
        ddof = 0 if bias else 1
    centered = x - x.mean(axis=1, keepdims=True)
    g = _float_like(g, m)
    g2 = g.reshape(x.shape[0], x.shape[0]) if np.ndim(g) == 2 else g.reshape(1, 1)
    r = (g2 + g2.T) @ centered / (n - ddof)
    if not rowvar and np.ndim(m) > 1:
        r = r.T
    return r.reshape(np.shape(m))


def pinv_adjoint(g, y, a):
    """The adjoint of `y = np.linalg.pinv(a)` (constant rank; Golub & Pereyra)."""
    g = _arr(g)
    yt = _mT(y)
    m, n = a.shape[-2], a.shape[-1]
    eye_m = _eye(m, y)
    eye_n = _eye(n, y)
    gt = _mT(g)
    return (-(yt @ g @ yt) + (eye_m - a @ y) @ gt @ y @ yt
            + yt @ y @ gt @ (eye_n - y @ a))


def svd_adjoint(g, usv, a, full_matrices=True, compute_uv=True):
    """The adjoint of `np.linalg.svd(a)` (real; thin factors, or square matrices when
    full_matrices=True; distinct non-zero singular values for the vectors' adjoint).
    Townsend (2016), with V = Vh^T."""
    if not compute_uv:
        u, s, vh = np.linalg.svd(a, full_matrices=False)
        return (u * _float_like(g, a)[..., None, :]) @ vh
    u, s, vh = usv
    u_bar, s_bar, vh_bar = g
    m, n = a.shape[-2], a.shape[-1]
    k = s.shape[-1]
    if full_matrices and m != n:
        u, u_bar = u[..., :, :k], u_bar[..., :, :k]
        vh, vh_bar = vh[..., :k, :], vh_bar[..., :k, :]
    v, v_bar = _mT(vh), _mT(vh_bar)
    ut, vt = _mT(u), vh
    eye_k = _eye(k, s)
    s2 = s[..., None, :] ** 2 - s[..., :, None] ** 2          # s_j^2 - s_i^2
    f = (1 - eye_k) / (s2 + eye_k)
    smat = s[..., None, :] * eye_k
    inner = (f * (ut @ u_bar - _mT(u_bar) @ u)) @ smat + s_bar[..., None, :] * eye_k \
        + smat @ (f * (vt @ v_bar - _mT(v_bar) @ v))
    out = u @ inner @ vt
    s_inv = 1 / s
    if m > k:
        out = out + (u_bar - u @ (ut @ u_bar)) * s_inv[..., None, :] @ vt
    if n > k:
        out = out + (u * s_inv[..., None, :]) @ (_mT(v_bar) - (_mT(v_bar) @ v) @ vt)
    return out


def qr_adjoint(g, qr, a):
    """The adjoint of `q, r = np.linalg.qr(a)` (reduced, m >= n, full column rank)."""
    q, r = qr
    q_bar, r_bar = g
    m_mat = r @ _mT(r_bar) - _mT(q_bar) @ q
    copyltu = np.tril(m_mat) + _mT(np.tril(m_mat, -1))
    rhs = q_bar + q @ copyltu
    # rhs @ r^{-T}: solve r x^T = rhs^T
    return _mT(np.linalg.solve(r, _mT(rhs)))


def matrix_power_adjoint(g, a, n):
    """The adjoint of `np.linalg.matrix_power(a, n)` for any integer n."""
    g = _arr(g)
    if n == 0:
        return g * 0
    if n < 0:
        b = np.linalg.inv(a)
        b_bar = matrix_power_adjoint(g, b, -n)
        return inv_adjoint(b_bar, b)
    at = _mT(a)
    powers = [np.broadcast_to(_eye(a.shape[-1], a), a.shape)]
    for _ in range(n - 1):
        powers.append(powers[-1] @ at)
    out = g * 0
    for k in range(n):
        out = out + powers[k] @ g @ powers[n - 1 - k]
    return out


def convolve_adjoint(g, a, v, mode="full", which=0, correlate=False):
    """Adjoints of `np.convolve(a, v, mode)` (or np.correlate when `correlate`)."""
    g = _arr(g)
    if correlate:
        # np.correlate(a, v, mode) == np.convolve(a, v[::-1], mode) for real inputs
        r = convolve_adjoint(g, a, v[::-1], mode, which)
        return r[::-1] if which == 1 else r
    n, m = a.shape[0], v.shape[0]
    full = n + m - 1
    offset = {"full": 0, "same": (min(n, m) - 1) // 2, "valid": min(n, m) - 1}[mode]
    g_full = np.zeros_like(g, shape=(full,))          # on g's device
    g_full[offset:offset + g.shape[0]] = g
    if which == 0:
        return np.correlate(g_full, v, mode="valid")
    return np.correlate(g_full, a, mode="valid")


def meshgrid_adjoint(g, x, indexing="xy", which=0, count=2):
    """The adjoint of input `which` (of `count`) of `np.meshgrid(..., indexing=indexing)`:
    its output's adjoint summed over every axis but the one that input varies along."""
    g = _arr(g)
    axis = which
    if indexing == "xy" and count > 1 and which < 2:
        axis = 1 - which
    others = tuple(i for i in range(g.ndim) if i != axis)
    return g.sum(axis=others).reshape(np.shape(x))


def interp_adjoint(g, x, xp, fp, which):
    """Adjoints of `np.interp(x, xp, fp)` w.r.t. x (which=0: the slope of the segment,
    0 outside [xp[0], xp[-1]]; at a sample point the segment to its right) or fp
    (which=2: the interpolation weights; outside the range the end values)."""
    g = _arr(g)
    n = np.shape(xp)[0]
    idx = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, n - 2)
    x0, x1 = xp[idx], xp[idx + 1]
    inside = (x >= xp[0]) & (x <= xp[-1])
    if which == 0:
        slope = (fp[idx + 1] - fp[idx]) / (x1 - x0)
        return unbroadcast(g * slope * inside, x)
    t = np.where(inside, (x - x0) / (x1 - x0), 0)
    out = fp * 0
    scatter_add(out, idx, g * (1 - t) * inside)
    scatter_add(out, idx + 1, g * t * inside)
    out[0] += np.sum(g * (x < xp[0]))
    out[-1] += np.sum(g * (x > xp[-1]))
    return out


def vector_norm_adjoint(g, y, x, axis=None, keepdims=False, ord=2):
    """The adjoint of `np.linalg.vector_norm` (a vector norm over any axes, flattened)."""
    nd = np.ndim(x)
    axes = _axes_tuple(axis, nd)
    rest = [i for i in range(nd) if i not in axes]
    perm = rest + list(axes)
    moved = x.transpose(perm)
    flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
    g_full = unreduce(g, x, axes, keepdims).transpose(perm).reshape(flat.shape)[..., :1]
    y_full = unreduce(y, x, axes, keepdims).transpose(perm).reshape(flat.shape)[..., :1]
    r = norm_adjoint(g_full, y_full, flat, ord, -1, True)
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return r.reshape(moved.shape).transpose(inverse)


def vecdot_adjoint(g, a, b, axis=-1, which=0):
    """Adjoints of `np.vecdot(a, b, axis=axis)` (real inputs), broadcasting undone."""
    g = _arr(g)
    other = b if which == 0 else a
    ge = np.expand_dims(g, axis if axis < 0 else axis)
    return unbroadcast(ge * other, a if which == 0 else b)


def split_like(g, parts, x, axis=0):
    """`g` cut into pieces shaped like `parts` along `axis` (the adjoint of split_parts)."""
    axis = _split_axis(axis, x)
    sizes = [np.shape(p)[axis] for p in parts]
    cuts = np.cumsum(sizes)[:-1]
    return [piece.reshape(np.shape(p)) for piece, p in zip(np.split(g, cuts, axis=axis), parts)]


def restack(pieces, parts, how):
    """The adjoint of `stack_parts(g, parts, how)`: the pieces joined back."""
    if how == "flat":
        return np.concatenate([np.reshape(p, -1) for p in pieces])
    if how == "h":
        return np.hstack(list(pieces))
    if how == "v":
        return np.vstack(list(pieces))
    if how == "d":
        return np.dstack(list(pieces))
    return np.column_stack(list(pieces))


def einsum_apply(subscripts, operands, which=None, replacement=None):
    """`np.einsum(subscripts, *operands)`, optionally with operand `which` replaced."""
    ops = list(operands)
    if which is not None:
        ops[which] = replacement
    return np.einsum(subscripts, *ops)


def einsum_operand_adjoints(g, subscripts, operands, which, c):
    """Second order of einsum_adjoint(g, subscripts, operands, which) with cotangent c:
    the adjoints of the other operands of einsum(subscripts, operands with c at which)."""
    ops = list(operands)
    ops[which] = c
    return tuple(zeros_like(op) if i == which else einsum_adjoint(g, subscripts, ops, i)
                 for i, op in enumerate(operands))


def add_into(acc, index, g):
    """`acc + unindex(g, acc, index)` computed in place: acc[index] += g (np.add.at for
    integer-array indices, so repeated indices accumulate)."""
    if isinstance(acc, list):
        acc[index] = accumulate(acc[index], g)
    elif is_basic_index(index):
        acc[index] += g
    else:
        scatter_add(acc, index, g)
    return acc


def cast_adjoint(g, y, x):
    """The adjoint of a cast `y = x.astype(...)`: cast back to x's dtype; zero when the
    cast went to an integer or bool dtype (rounding has no derivative)."""
    out = cast_like(g, x)
    if getattr(y, "dtype", None) is not None and y.dtype.kind not in "fc" and out is not None:
        out = out * 0
    return out


def last_write_mask(x, index):
    """For `x[index] = v`: which entries of `x[index]` are the write that survives (with a
    repeated integer index NumPy keeps the last one). Basic indices never repeat."""
    if is_basic_index(index):
        return True
    order, winner = _repeated_writes(x, index, np if type(x) is np.ndarray else array_module(x))
    return winner == order


def _repeated_writes(x, index, xp):
    """For the writes of `x[index] = ...` in order: each one's position in that order,
    and the position of the write that ends up in its place (the last one)."""
    marker = xp.full(np.shape(x), -1, dtype=np.int64)
    order = xp.arange(marker[index].size).reshape(marker[index].shape)
    if xp is np:
        marker[index] = order
    else:                              # CuPy leaves the winner of repeated writes open
        import cupyx
        cupyx.scatter_max(marker, _device_index(index, xp), order)
    return order, marker[index]
