"""Recover the source, syntax tree and name bindings of a Python function."""
import ast
import dis
import inspect
import itertools
import linecache
import textwrap
from dataclasses import dataclass

import gast

from ..errors import SourceUnavailableError, UnsupportedSyntaxError
from .desugar import desugar_function


@dataclass
class ParsedFunction:
    """A function's syntax tree with everything needed to resolve its names."""
    node: object            # gast.FunctionDef or gast.Lambda
    filename: str
    line_offset: int        # add to node line numbers to get file line numbers
    globals: dict
    closure: dict
    pyfunc: object = None

    @property
    def name(self):
        return getattr(self.node, "name", "<lambda>")

    def lineno(self, node):
        return getattr(node, "lineno", 1) + self.line_offset


_cache = {}


def parse_function(fn):
    """Parse `fn` into a ParsedFunction; cached per code object.

    A decorator's wrapper is read as itself (it may change the maths); only a
    wrapper whose source cannot be read is looked through, to what it wraps.
    """
    if inspect.ismethod(fn):
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    if code is None or not _has_source(code):
        unwrapped = inspect.unwrap(fn)
        if unwrapped is not fn:
            return parse_function(unwrapped)
    code = getattr(fn, "__code__", None)
    if code is None:
        raise SourceUnavailableError(f"{fn!r} is not a Python function; it has no source to read")
    key = (code, id(fn.__globals__))
    parsed = _cache.get(key)
    if parsed is None:
        parsed = _cache[key] = _parse(fn, code)
    closure = {}
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            closure[name] = cell.cell_contents
        except ValueError:  # an empty cell: the name is assigned later in the enclosing scope
            pass
    return ParsedFunction(parsed.node, parsed.filename, parsed.line_offset, fn.__globals__,
                          closure, fn)


def remember_parsed(fn, parsed):
    """`fn` reads as `parsed` (a function diffsrc built from a syntax tree, not a file)."""
    _cache[(fn.__code__, id(fn.__globals__))] = parsed


def _has_source(code):
    return bool(linecache.getlines(code.co_filename))


def _source_lines(fn, code):
    """The lines of `fn`'s own definition (not of what a decorator wraps)."""
    linecache.checkcache(code.co_filename)        # the file may have changed (a reload)
    lines = linecache.getlines(code.co_filename)
    if lines and code.co_name != "<lambda>":
        first = code.co_firstlineno
        return inspect.getblock(lines[first - 1:]), first
    return inspect.getsourcelines(fn)


def _parse(fn, code):
    filename = code.co_filename
    try:
        lines, first = _source_lines(fn, code)
    except (OSError, TypeError, IndexError) as exc:
        raise SourceUnavailableError(
            f"cannot read the source of {getattr(fn, '__qualname__', fn)!r} ({exc}); define it "
            "in a file, or pass its source text to diffsrc (ds.grad(\"def f(x): ...\"))",
            filename, code.co_firstlineno) from None
    text = textwrap.dedent("".join(lines))
    first = max(first, 1)
    if code.co_name == "<lambda>":
        node, offset = _find_lambda(text, code, first)
    else:
        try:
            tree = gast.parse(text)
        except SyntaxError as exc:
            raise SourceUnavailableError(f"cannot parse the source of {code.co_name}: {exc}",
                                         filename, first) from None
        node = next((n for n in tree.body if isinstance(n, (gast.FunctionDef,
                                                           gast.AsyncFunctionDef))), None)
        if node is None:
            raise SourceUnavailableError(f"no function definition found for {code.co_name}",
                                         filename, first)
        offset = first - 1
    if isinstance(node, gast.AsyncFunctionDef):
        raise UnsupportedSyntaxError("async functions are not supported", filename,
                                     node.lineno + offset)
    if isinstance(node, gast.FunctionDef):
        node = desugar_function(node)
    return ParsedFunction(node, filename, offset, None, None)


def _find_lambda(text, code, first):
    """Find the lambda whose parameters match `code` inside the source lines around it."""
    params = list(code.co_varnames[:code.co_argcount])
    candidates = []
    lines = text.splitlines()
    # The lambda may sit inside a larger statement that does not parse on its own:
    # try the whole text, then every suffix starting at a `lambda` keyword.
    snippets = [text]
    for i, line in enumerate(lines):
        for j in [k for k in range(len(line)) if line.startswith("lambda", k)]:
            rest = "\n".join([line[j:]] + lines[i + 1:])
            for end in range(len(rest), 0, -1):
                snippets.append(("(" + rest[:end] + ")", i))
    for snippet in snippets:
        src, row = (snippet, 0) if isinstance(snippet, str) else snippet
        try:
            tree = gast.parse(src)
        except SyntaxError:
            continue
        for node in gast.walk(tree):
            if isinstance(node, gast.Lambda) and [a.id for a in node.args.args] == params:
                candidates.append((node, first - 1 + row))
        if candidates:
            break
    if not candidates:
        raise SourceUnavailableError("cannot recover the source of this lambda",
                                     code.co_filename, first)
    matching = [c for c in candidates if _same_code(c[0], code)]
    if len(matching) != 1 and len({ast.unparse(gast.gast_to_ast(c[0])) for c in candidates}) > 1:
        if not matching:
            raise SourceUnavailableError("cannot tell which lambda on this line is meant; "
                                         "give it its own line or a def",
                                         code.co_filename, first)
    return (matching or candidates)[0]


def _same_code(node, code):
    """Whether lambda `node` compiles to the same bytecode as `code`."""
    try:
        expression = ast.Expression(body=gast.gast_to_ast(node))
        compiled = compile(ast.fix_missing_locations(expression), "<lambda>", "eval")
    except (SyntaxError, ValueError, TypeError):
        return False
    inner = next((c for c in compiled.co_consts if hasattr(c, "co_code")), None)
    return inner is not None and _instructions(inner) == _instructions(code)


def _instructions(code):
    """What the code does, ignoring how the compiler chose to fetch methods."""
    return [(i.opname.replace("LOAD_METHOD", "LOAD_ATTR"),
             i.argval if not hasattr(i.argval, "co_code") else None)
            for i in dis.get_instructions(code)]


_counter = itertools.count(1)


def function_from_source(source, namespace=None):
    """Define the function(s) in `source` and return the last one defined.

    The text is registered with linecache under a unique file name, so its
    source can be read back (and tracebacks show it) like a file's.
    """
    source = textwrap.dedent(source)
    filename = f"<diffsrc-input-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        tree = gast.parse(source)
    except SyntaxError as exc:
        raise UnsupportedSyntaxError(f"syntax error in source text: {exc.msg}", filename,
                                     exc.lineno) from None
    names = [n.name for n in tree.body if isinstance(n, gast.FunctionDef)]
    if not names:
        raise SourceUnavailableError("the source text defines no function", filename, 1)
    namespace = dict(namespace or {})
    exec(compile(source, filename, "exec"), namespace)
    return namespace[names[-1]]
