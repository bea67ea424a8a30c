"""Optimisation passes over the IR, one module each, run in a fixed order.

`optimize(fn, trace=print)` shows the IR after every pass, for debugging.
"""
from ..ir import format_function, verify
from .composites import recognize_composites
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .fusion import update_in_place_outside_groups
from .inplace import update_in_place
from .ordered_writes import keep_repeated_writes_ordered
from .placed_outputs import place_outputs
from .scalarize import scalarize
from .loop_batching import batch_loop_products
from .tiling import concatenate_tiled_adjoints
from .simplify import simplify
from .sinking import sink_to_first_use
from .row_products import write_row_products_as_dot
from .slot_outputs import concatenate_in_slots
from .slot_writes import write_slots
from .specialize import specialize
from .stacked_products import flatten_stacked_products

PIPELINE = (("simplify", simplify), ("composites", recognize_composites),
            ("cse", eliminate_common_subexpressions), ("dce", eliminate_dead_code))
# These need the shapes of specialised code; loop batching pushes values the in-place
# pass must then leave alone.
BATCHED = PIPELINE + (("stacked products", flatten_stacked_products),
                      ("placed outputs", place_outputs),
                      ("tiling", concatenate_tiled_adjoints),
                      ("slot writes", write_slots),
                      ("loop batching", batch_loop_products),
                      ("sinking", sink_to_first_use))
# In-place updates are decided last, once every reader of every array (the pullback's
# included) is in the IR; a row times a matrix becomes `x.dot(W)` after every pass that
# looks for `@` (NumPy only: CuPy's dispatch costs are others).
FINAL = BATCHED + (("inplace", update_in_place), ("slot outputs", concatenate_in_slots),
                   ("dce after inplace", eliminate_dead_code),
                   ("row products", write_row_products_as_dot))
# CuPy: repeated-index writes stay ordered (passes/ordered_writes.py); fused code also keeps
# fresh results for the ops that join a fusion group.
FINAL_DEVICE = BATCHED + (("inplace", update_in_place),
                          ("ordered writes", keep_repeated_writes_ordered),
                          ("dce after inplace", eliminate_dead_code))
FINAL_FUSED = BATCHED + (("inplace", update_in_place_outside_groups),
                         ("ordered writes", keep_repeated_writes_ordered),
                         ("dce after inplace", eliminate_dead_code))


def optimize(fn, trace=None, final=True, args=None, inplace=True):
    """Run every pass, verifying the IR after each; `trace(name, text)` sees each result.

    With `args`, the final pipeline also specialises the code to their shapes and dtypes;
    `inplace=False` leaves out the in-place updates, `inplace="device"` keeps repeated-index
    writes ordered (CuPy), `inplace="fused"` also leaves out the updates of ops that join a
    fusion group (fused kernels take their place)."""
    chosen = {"fused": FINAL_FUSED, "device": FINAL_DEVICE, True: FINAL, False: PIPELINE}
    passes = chosen[inplace] if final else PIPELINE
    if final and args is not None:
        # scalarize runs once the pipeline has cleaned up after specialize: it counts readers
        scalars = () if inplace in ("fused", "device") else (("scalarize", scalarize),)
        passes = PIPELINE + (("specialize", lambda f: specialize(
            f, args, host=inplace not in ("fused", "device"))),) + PIPELINE + \
            scalars + passes[len(PIPELINE):]
    for name, run in passes:
        run(fn)
        verify(fn)
        if trace is not None:
            trace(name, format_function(fn))
    return fn
