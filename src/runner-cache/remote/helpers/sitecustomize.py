"""Imported by python's `site` at startup (this directory is first on PYTHONPATH).

Puts the `cronium` helpers into builtins (loaded on first use), so scripts can
call cronium.input() without an import, then runs the sitecustomize this file shadows, if any (the
next one on sys.path, e.g. a distribution's).  Nothing here may break or slow
down the user's script: every failure is swallowed.
"""


def _cronium_install():
    # Lazily: the module is only compiled and run on first use (no __pycache__
    # can be written when the runner directory is read-only).
    try:
        import builtins
        import os
        import sys
        from importlib.machinery import PathFinder
        from importlib.util import LazyLoader, module_from_spec

        module = sys.modules.get("cronium")
        if module is None:
            here = os.path.dirname(os.path.abspath(__file__))
            spec = PathFinder.find_spec("cronium", [here])
            if spec is None or spec.loader is None:
                return
            spec.loader = LazyLoader(spec.loader)
            module = module_from_spec(spec)
            sys.modules["cronium"] = module
            spec.loader.exec_module(module)
        builtins.cronium = module
    except Exception:
        pass


def _cronium_chain():
    import os
    import sys

    try:
        here = os.path.dirname(os.path.abspath(__file__))

        def same(entry):
            try:
                return os.path.abspath(entry or os.curdir) == here
            except Exception:
                return False

        # the entries after ours, in order; all others if ours is not there
        rest = sys.path
        for i, entry in enumerate(sys.path):
            if same(entry):
                rest = sys.path[i + 1 :]
                break
        rest = [e for e in rest if isinstance(e, str) and not same(e)]

        from importlib.machinery import PathFinder
        from importlib.util import module_from_spec

        spec = PathFinder.find_spec("sitecustomize", rest)
        if spec is None or spec.loader is None:
            return
        module = module_from_spec(spec)
    except Exception:
        return
    # What site.execsitecustomize() does with an error, for the chained file.
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        try:
            if sys.flags.verbose:
                sys.excepthook(*sys.exc_info())
            else:
                sys.stderr.write(
                    "Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
                    "%s: %s\n" % (err.__class__.__name__, err)
                )
        except Exception:
            pass


_cronium_install()
_cronium_chain()
del _cronium_install, _cronium_chain
