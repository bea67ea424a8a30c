"""mkdocs hook: every program output shown in the docs is produced by running it.

In a page, a fenced block opened with ```` ```python exec ```` is executed when the
site is built (blocks of one page share one namespace, in order), and is replaced
by the code followed by what it printed. A ```` ```console exec ```` block runs its
`$ ` lines as commands (`diffsrc ...` and `python ...` use this interpreter) in a
scratch folder holding the page's example files, and shows each command with its
output. Options after `exec`:

* `file=NAME.py`  the (virtual) file the code belongs to, default `example.py`;
  functions defined there have source that diffsrc can read, and generated code
  names that file;
* `hide`          show only the output, not the code;
* `raises`        the block must raise (a command must exit non-zero); the error
  is shown as it would print;
* `output=LANG`   highlight the output as LANG (default `text`; `python` for source).

A block that raises when it should not, or does not when it should, stops the
build: the docs cannot show output that the code does not produce.

`<!-- diffsrc-examples -->` is replaced by a section per script in examples/,
made from its docstring, with its source in a collapsed block.
"""
import ast
import contextlib
import io
import linecache
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import types

from mkdocs.exceptions import PluginError

FENCE = re.compile(r"^```(python|console) exec([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


PLOTS = os.path.join(ROOT, "docs", "plots")   # copied from examples/out/ after full runs


def example_plots(stem):
    """The plots a full run of an example wrote (kept in docs/plots/)."""
    if not os.path.isdir(PLOTS):
        return []
    return sorted(p for p in os.listdir(PLOTS) if p.startswith(stem + "_") and
                  p.endswith(".png") and "_smoke" not in p)


def on_files(files, config):
    """Publish the example plots under example-plots/."""
    from mkdocs.structure.files import File
    for name in sorted(os.listdir(PLOTS)) if os.path.isdir(PLOTS) else []:
        if name.endswith(".png") and "_smoke" not in name:
            files.append(File.generated(config, f"example-plots/{name}",
                                        abs_src_path=os.path.join(PLOTS, name)))
    return files


def on_page_markdown(markdown, page, config, files):
    if "<!-- diffsrc-examples -->" in markdown:
        markdown = markdown.replace("<!-- diffsrc-examples -->", examples_markdown())
    if " exec" not in markdown:
        return markdown
    runner = PageRunner(page.file.src_uri)
    try:
        return FENCE.sub(runner.replace, markdown)
    finally:
        runner.close()


def parse_options(text):
    options = {"file": "example.py", "hide": False, "raises": False, "output": "text"}
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        if sep:
            if key not in ("file", "output"):
                raise PluginError(f"unknown exec option {key!r}")
            options[key] = value
        elif key in ("hide", "raises"):
            options[key] = True
        else:
            raise PluginError(f"unknown exec option {token!r}")
    return options


class PageRunner:
    """Runs one page's blocks: a module namespace and the page's virtual files."""

    def __init__(self, page):
        self.page = page
        slug = re.sub(r"\W", "_", os.path.splitext(page)[0])
        self.module = types.ModuleType(f"docs_{slug}")
        sys.modules[self.module.__name__] = self.module
        self.files = {}
        self.count = 0
        self.scratch = tempfile.mkdtemp(prefix="diffsrc-docs-")   # the blocks' cwd
        self.imported = set(sys.modules)

    def close(self):
        sys.modules.pop(self.module.__name__, None)
        for name in set(sys.modules) - self.imported:        # modules the page wrote
            if os.path.dirname(getattr(sys.modules[name], "__file__", None) or "") == \
                    self.scratch:
                del sys.modules[name]
        shutil.rmtree(self.scratch, ignore_errors=True)

    def replace(self, match):
        kind, options, code = match.group(1), parse_options(match.group(2)), match.group(3)
        self.count += 1
        where = f"{self.page}, exec block {self.count}"
        if kind == "python":
            shown, output = code, self.run_python(code, options, where)
            lang = "python"
        else:
            shown, output, lang = None, self.run_console(code, options, where), "console"
        parts = []
        if kind == "console":
            parts.append(f"```console\n{output.rstrip()}\n```\n")
            return "\n".join(parts)
        if not options["hide"]:
            parts.append(f"```{lang}\n{shown.rstrip()}\n```\n")
        if output.strip():
            if not options["hide"]:
                parts.append("*Output:*\n")
            parts.append(f"```{options['output']}\n{output.rstrip()}\n```\n")
        return "\n".join(parts)

    def run_python(self, code, options, where):
        name = options["file"]
        before = self.files.get(name, "")
        offset = before.count("\n")
        self.files[name] = before + code
        lines = self.files[name].splitlines(True)
        linecache.cache[name] = (len(self.files[name]), None, lines, name)
        out = io.StringIO()
        cwd = os.getcwd()
        try:
            compiled = compile("\n" * offset + code, name, "exec")
            os.chdir(self.scratch)
            sys.path.insert(0, self.scratch)
            with contextlib.redirect_stdout(out):
                exec(compiled, self.module.__dict__)
        except Exception as exc:                      # noqa: BLE001
            if not options["raises"]:
                raise PluginError(f"{where} raised {type(exc).__name__}: {exc}\n"
                                  f"{format_exception(exc)}") from exc
            out.write(f"{type(exc).__module__.replace('builtins', '').strip('.')}"
                      f"{'.' if type(exc).__module__ != 'builtins' else ''}"
                      f"{type(exc).__name__}: {exc}\n")
            for note in getattr(exc, "__notes__", []):
                out.write(note + "\n")
            return out.getvalue()
        finally:
            os.chdir(cwd)
            if self.scratch in sys.path:
                sys.path.remove(self.scratch)
        if options["raises"]:
            raise PluginError(f"{where} is marked `raises` but raised nothing")
        return out.getvalue()

    def run_console(self, code, options, where):
        folder = tempfile.mkdtemp(prefix="diffsrc-docs-")
        try:
            for name, text in self.files.items():
                with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                    f.write(quiet(text))
            shown = []
            env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "88",
                   "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
            for line in code.splitlines():
                if not line.startswith("$ "):
                    raise PluginError(f"{where}: console lines start with '$ ': {line!r}")
                argv = shlex.split(line[2:])
                if argv[0] == "diffsrc":
                    argv = [sys.executable, "-m", "diffsrc"] + argv[1:]
                elif argv[0] == "python":
                    argv = [sys.executable] + argv[1:]
                proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True,
                                      env=env, timeout=300)
                failed = proc.returncode != 0
                if failed != options["raises"]:
                    raise PluginError(f"{where}: `{line[2:]}` exited {proc.returncode}"
                                      f"{' (expected an error)' if options['raises'] else ''}"
                                      f"\n{proc.stdout}{proc.stderr}")
                text = proc.stdout + proc.stderr
                text = text.replace(os.path.realpath(folder) + os.sep, "")
                text = text.replace(folder + os.sep, "")
                shown.append(line + "\n" + text.rstrip("\n"))
                if failed:
                    shown.append(f"$ echo $?\n{proc.returncode}")
            return "\n".join(shown)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def quiet(text):
    """The page's file as a module to import: top-level expression statements (the
    blocks' prints) commented out, so every other line keeps its number."""
    lines = text.splitlines(True)
    for node in ast.parse(text).body:
        if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
            for i in range(node.lineno - 1, node.end_lineno):
                lines[i] = "# " + lines[i]
    return "".join(lines)


def format_exception(exc):
    import traceback
    return "".join(traceback.format_exception(exc))


def examples_markdown():
    """A section per examples/*.py: its docstring, how to run it, its source."""
    folder = os.path.join(ROOT, "examples")
    out = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py") or name.startswith("_"):
            continue
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8") as f:
            source = f.read()
        doc = ast.get_docstring(ast.parse(source)) or ""
        title, _, body = doc.partition("\n")
        usage = [line.strip() for line in body.splitlines() if line.strip().startswith(
            "python examples/")]
        text = "\n".join(line for line in body.splitlines()
                         if not line.strip().startswith("python examples/")).strip()
        out.append(f"## {name}\n\n**{title.strip()}**\n")
        if text:
            out.append("```text\n" + text + "\n```\n")
        if usage:
            out.append("Run it:\n\n```bash\n" + "\n".join(usage) + "\n```\n")
        for plot in example_plots(name[:-3]):
            out.append(f"![{plot}](example-plots/{plot})\n")
        out.append(f'<details markdown="1"><summary>Source of examples/{name}</summary>\n\n'
                   f"```python\n{source.rstrip()}\n```\n\n</details>\n")
    return "\n".join(out)
