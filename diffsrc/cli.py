"""The `diffsrc` command line: read and ship the derivative code of a function in a file.

    diffsrc show FILE.py:FUNC [--wrt a,b] [--mode grad] [--ir] [--no-opt] [--diff]
    diffsrc export FILE.py:FUNC -o dfunc.py
    python -m diffsrc ...

FILE.py is imported (its `if __name__ == "__main__":` block does not run) and
FUNC is looked up in it (`Class.method` works too). Without `--example`, the
function is transformed for placeholder array arguments, as `ds.source` does for
a gradient that was never called; `--example 'EXPR'` gives real example
arguments instead (a Python expression evaluated with `np`, `math` and the
file's own names in scope; a tuple is the argument list).

Exit status: 0 on success, 1 for an error in the user's file or function (missing
file or function, syntax error, unsupported construct: printed as file:line), 2
for a command-line usage error, 3 for an internal error of diffsrc.
"""
import argparse
import difflib
import importlib.util
import inspect
import math
import os
import re
import sys
import traceback

import numpy as np

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
MODES = ("grad", "pullback", "primal", "jvp", "hvp")


class CommandError(Exception):
    """An error to report in one line (or a few) with an exit status."""

    def __init__(self, message, status=EXIT_ERROR):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ the user's file
def split_target(target):
    """'path/to/file.py:Func.attr' -> ('path/to/file.py', 'Func.attr')."""
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise CommandError(f"expected FILE.py:FUNCTION, got {target!r}", EXIT_USAGE)
    if not all(part.isidentifier() for part in name.split(".")):
        raise CommandError(f"{name!r} is not a function name (expected FILE.py:FUNCTION)",
                           EXIT_USAGE)
    return path, name


def load_module(path):
    """Import the user's file as a module, without running its __main__ block."""
    if not os.path.exists(path):
        raise CommandError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CommandError(f"{path}: is a directory, not a Python file")
    path = os.path.abspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        compile(data, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise CommandError(syntax_error_text(exc, path)) from None
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if stem.isidentifier() and stem not in sys.modules else \
        "_diffsrc_user_" + re.sub(r"\W", "_", stem)
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)          # so that the file's own imports work
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:
        raise CommandError(f"{display(path)}: the file called sys.exit({exc.code!r}) while "
                           "being imported; put its script code under "
                           "`if __name__ == \"__main__\":`") from None
    except Exception as exc:
        frame = user_frame(exc, path)
        where = f"{display(path)}:{frame.lineno}: " if frame else f"{display(path)}: "
        raise CommandError(f"{where}importing the file raised {type(exc).__name__}: "
                           f"{exc}") from None
    return module


def syntax_error_text(exc, path):
    line = f"{display(path)}:{exc.lineno or '?'}"
    if exc.offset:
        line += f":{exc.offset}"
    text = f"{line}: syntax error: {exc.msg}"
    if exc.text:
        code = exc.text.rstrip("\n")
        stripped = code.lstrip()
        text += "\n    " + stripped
        if exc.offset:
            caret = max(exc.offset - 1 - (len(code) - len(stripped)), 0)
            text += "\n    " + " " * caret + "^"
    return text


def user_frame(exc, path):
    """The last traceback frame of `exc` that is in file `path`."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == path:
            found = frame
    return found


def display(path):
    """A path as the user would type it: relative to the working directory if inside it."""
    if not path or path.startswith("<"):
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def find_function(module, name, path):
    obj = module
    for i, part in enumerate(name.split(".")):
        if not hasattr(obj, part):
            here = ".".join(name.split(".")[:i]) or display(path)
            raise CommandError(f"{here} has no function {part!r}" + defined_hint(obj, module))
        obj = getattr(obj, part)
    from .api import GradientFunction
    if isinstance(obj, GradientFunction):
        return obj
    if inspect.isclass(obj) or not callable(obj):
        kind = type(obj).__name__
        raise CommandError(f"{name} in {display(path)} is {'an' if kind[0] in 'aeiou' else 'a'} "
                           f"{kind}, not a function")
    return obj


def defined_hint(obj, module):
    from .api import GradientFunction
    names = sorted(n for n, v in vars(obj).items() if not n.startswith("_") and (
        inspect.isfunction(v) and (obj is not module or v.__module__ == module.__name__)
        or isinstance(v, GradientFunction)))
    if not names:
        return " (it defines no functions)"
    return f" (functions there: {', '.join(names)})"


def example_args(expr, module, fn):
    """The argument tuple given by --example, or placeholder arrays."""
    from .api import _example_args
    if expr is None:
        return _example_args(fn), False
    scope = dict(vars(module))
    scope.update(np=np, numpy=np, math=math)
    try:
        value = eval(expr, scope)                # noqa: S307 (the user's own expression)
    except Exception as exc:
        raise CommandError(f"--example {expr!r}: {type(exc).__name__}: {exc}") from None
    return (value if isinstance(value, tuple) else (value,)), True


def parse_wrt(text):
    if text is None:
        return None
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise CommandError("--wrt needs argument names or positions, like --wrt W,b",
                           EXIT_USAGE)
    return tuple(int(s) if re.fullmatch(r"-?\d+", s) else s for s in items)


# -------------------------------------------------------------------- transforming
class Target:
    """A function of the user's, with the arguments and wrt to transform it for."""

    def __init__(self, args):
        from .api import GradientFunction
        path, name = split_target(args.target)
        self.path = os.path.abspath(path)
        self.module = load_module(path)
        obj = find_function(self.module, name, self.path)
        self.name = name
        self.gradient = obj if isinstance(obj, GradientFunction) else None
        self.fn = obj.fn if self.gradient is not None else obj
        self.args, self.real_args = example_args(args.example, self.module, self.fn)
        if self.gradient is not None and self.gradient.bound:
            self.args = self.gradient.bound + self.args
        wrt = parse_wrt(args.wrt)
        if wrt is None and self.gradient is not None:
            wrt = self.gradient.wrt[0] if self.gradient.single else self.gradient.wrt
        if wrt is None:
            wrt = self.differentiable_positions()
        self.wrt = wrt

    def differentiable_positions(self):
        from .frontend.trees import tree_of
        positions = tuple(i for i, a in enumerate(self.args)
                          if tree_of(a).kind != "static" and not (
                              tree_of(a).kind == "leaf" and not tree_of(a).differentiable_leaf()))
        if not positions:
            raise CommandError(f"{self.name} has no argument that can carry a gradient; "
                               "give --example with float or array arguments")
        return positions

    def gradient_function(self, with_value=False):
        from .api import GradientFunction
        try:
            return GradientFunction(self.fn, self.wrt, with_value=with_value)
        except (ValueError, TypeError) as exc:
            raise CommandError(f"--wrt: {exc}", EXIT_USAGE) from None

    def compiled(self, mode, optimize):
        """Run the pipeline; returns the api.Compiled result."""
        from . import api
        if mode == "grad":
            return self.gradient_function().compiled_for(self.args, optimize)
        if mode in ("pullback", "jvp"):
            gf = self.gradient_function()
            api._check_differentiable(self.fn, self.args, gf.wrt)
            return api.transform(self.fn, self.args, gf.wrt, mode, optimize)
        if mode == "hvp":
            gf = self.gradient_function()
            api._check_differentiable(self.fn, self.args, gf.wrt)
            return api.transform(gf, self.args, gf.wrt, "jvp", optimize,
                                 order="second order (hvp)")
        return api.transform(self.fn, self.args, (), "primal", optimize)


def format_ir(ir_function):
    """The IR of a transformed function: the forward body, then the pullback block."""
    from .ir.printer import format_block, format_function
    text = format_function(ir_function)
    pullback = getattr(ir_function, "pullback", None)
    if pullback is not None and pullback.ops and "pullback(" not in text:
        params = ", ".join(repr(p) for p in pullback.params)
        text += f"pullback({params}):\n" + "\n".join(format_block(pullback)) + "\n"
    return renumber(text)


def renumber(text):
    """Number IR values %0, %1, ... in order of appearance (stable across runs)."""
    numbers = {}

    def sub(match):
        return "%" + str(numbers.setdefault(match.group(1), len(numbers)))
    return re.sub(r"%(\d+)", sub, text)


# -------------------------------------------------------------------------- output
def use_color(choice, stream):
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def highlight(text, language, color):
    """`text` with terminal colours when asked and pygments is installed."""
    if not color:
        return text
    try:
        from pygments import highlight as pyg_highlight
        from pygments.formatters import TerminalFormatter
        from pygments.lexers import DiffLexer, PythonLexer
    except ImportError:
        return text
    lexer = DiffLexer() if language == "diff" else PythonLexer()
    return pyg_highlight(text, lexer, TerminalFormatter())


def unified(before, after, label):
    diff = list(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                     f"{label} before the optimisation passes",
                                     f"{label} after the optimisation passes"))
    if not diff:
        return f"# {label}: the optimisation passes changed nothing\n"
    return "".join(line if line.endswith("\n") else line + "\n" for line in diff)


def views(target, mode, optimize, ir, source, annotate):
    """[(title, text, language)] for the requested views of one pipeline run."""
    from .export import annotate_source
    compiled = target.compiled(mode, optimize)
    out = []
    if ir:
        out.append(("IR", format_ir(compiled.ir), "python"))
    if source:
        text = annotate_source(compiled.source, compiled.line_locs) if annotate else \
            compiled.source
        out.append(("generated source", text, "python"))
    return out


# ------------------------------------------------------------------------ commands
def cmd_show(args, stdout):
    if args.diff and args.no_opt:
        raise CommandError("--diff already shows the code without and with the passes; "
                           "drop --no-opt", EXIT_USAGE)
    target = Target(args)
    want_source = args.source or not args.ir
    color = use_color(args.color, stdout)
    if args.diff:
        before = views(target, args.mode, False, args.ir, want_source, args.annotate)
        after = views(target, args.mode, True, args.ir, want_source, args.annotate)
        blocks = [(title, unified(b, a, title), "diff")
                  for (title, b, _), (_, a, _) in zip(before, after)]
    else:
        blocks = views(target, args.mode, not args.no_opt, args.ir, want_source, args.annotate)
    for k, (title, text, language) in enumerate(blocks):
        if len(blocks) > 1:
            stdout.write(("\n" if k else "") + highlight(f"# ---- {title} ----\n", "python",
                                                         color))
        stdout.write(highlight(text, language, color))
    return EXIT_OK


def cmd_export(args, stdout):
    from .export import export
    target = Target(args)
    gf = target.gradient_function(with_value=args.with_value)
    text = export(gf, None, args=target.args if target.real_args else None, name=args.name,
                  annotate=args.annotate)
    if args.output in (None, "-"):
        stdout.write(text)
        return EXIT_OK
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror}") from None
    public = re.search(r'__all__ = \["(\w+)"\]', text).group(1)
    print(f"diffsrc: wrote {args.output} ({public}, the derivative of {target.name})",
          file=sys.stderr)
    return EXIT_OK


def build_parser():
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="diffsrc",
        description="Show and export the derivative code that diffsrc generates for a "
                    "Python function.",
        epilog="Run `diffsrc show -h` or `diffsrc export -h` for each command's options.")
    parser.add_argument("--version", action="version", version=f"diffsrc {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="on an internal error, print the full Python traceback")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def common(p):
        p.add_argument("target", metavar="FILE.py:FUNC",
                       help="the function to differentiate, e.g. model.py:loss or "
                            "model.py:Net.loss")
        p.add_argument("--wrt", metavar="A,B",
                       help="arguments to differentiate with respect to, by name or "
                            "position (default: every float or array argument, or the wrt "
                            "of a function decorated with @ds.grad)")
        p.add_argument("--example", metavar="EXPR",
                       help="example arguments: a Python expression (with np, math and "
                            "the file's names in scope) giving the argument tuple, e.g. "
                            "'(np.ones((3, 2)), 1.0)'; default: placeholder arrays")
        p.add_argument("--annotate", action="store_true",
                       help="end generated lines with '# from FILE.py:LINE' comments")
        p.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)

    show = commands.add_parser("show", help="print the generated derivative source or IR",
                               description="Print the SSA IR and/or the generated "
                                           "derivative source of FUNC.")
    common(show)
    show.add_argument("--mode", choices=MODES, default="grad",
                      help="grad (default): value and gradient; pullback: value and a "
                           "closure for the adjoints; primal: the lowered function itself; "
                           "jvp: value and tangent (forward mode); hvp: gradient and "
                           "Hessian-vector product (forward over reverse)")
    show.add_argument("--ir", action="store_true", help="print the SSA IR")
    show.add_argument("--source", action="store_true",
                      help="print the generated source (the default; with --ir, print both)")
    show.add_argument("--no-opt", action="store_true",
                      help="skip the optimisation passes")
    show.add_argument("--diff", action="store_true",
                      help="show what the optimisation passes change, as a unified diff")
    show.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="syntax highlighting (auto: when stdout is a terminal and "
                           "pygments is installed)")
    show.set_defaults(run=cmd_show)

    exp = commands.add_parser("export", help="write a standalone NumPy-only module",
                              description="Write the derivative of FUNC as a standalone "
                                          "module that needs only NumPy.")
    common(exp)
    exp.add_argument("-o", "--output", metavar="OUT.py",
                     help="file to write (default: standard output)")
    exp.add_argument("--name", help="name of the exported function (default: FUNC_grad)")
    exp.add_argument("--with-value", action="store_true",
                     help="export ds.value_and_grad's convention: (value, gradient)")
    exp.set_defaults(run=cmd_export)
    return parser


def main(argv=None, stdout=None):
    """Entry point of the `diffsrc` console script and of `python -m diffsrc`."""
    from .errors import DiffsrcError
    stdout = stdout or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args, stdout)
    except CommandError as exc:
        print(f"diffsrc: error: {exc}", file=sys.stderr)
        return exc.status
    except DiffsrcError as exc:
        print(diffsrc_error_text(exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:                    # a bug in diffsrc, not in the user's code
        if args.traceback or os.environ.get("DIFFSRC_TRACEBACK"):
            traceback.print_exc()
        print(f"diffsrc: internal error: {type(exc).__name__}: {exc}\n"
              "diffsrc: this is a bug in diffsrc (or the function needs real example "
              "arguments: try --example); rerun with --traceback for details",
              file=sys.stderr)
        return EXIT_INTERNAL


def diffsrc_error_text(exc):
    """`file.py:LINE: error: Kind: message` and the offending line, like a compiler."""
    kind = type(exc).__name__
    if not exc.filename or not exc.lineno:
        return f"diffsrc: error: {kind}: {exc.message}"
    text = f"{display(exc.filename)}:{exc.lineno}: error: {kind}: {exc.message}"
    import linecache
    line = linecache.getline(exc.filename, exc.lineno).strip()
    if line:
        text += f"\n    {exc.lineno} | {line}"
    return text


if __name__ == "__main__":
    sys.exit(main())
