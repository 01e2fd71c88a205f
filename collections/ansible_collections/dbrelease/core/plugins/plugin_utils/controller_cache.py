"""Two caches for Ansible's main process, installed before the worker processes fork (callback controller_cache).

Measured on a one-database release of the demo (docs/benchmarks.md, "Fleet"), two costs of ansible-core 2.19 grow
with every host and every task, and neither is dbrelease's own work:

- **Jinja compilation.** ansible-core compiles a template string each time it renders it: no cache. Every task runs
  in a worker forked from the main process, so each worker compiles again the same `module_defaults` connection
  fields, role defaults and task arguments (about 670 compilations in the workers of one release, most of them
  repeats). `compile_cache()` memoises compiled templates and expressions by their text, the loader's base
  directory and the compile options; `prewarm(task)`, called in the main process when a task starts (before its
  workers fork), compiles that task's templates there, so every worker inherits them compiled.
- **`vars_files`.** The variable manager reads and parses a play's `vars_files` again for every host and every task
  (`cache='vaulted'` keeps only encrypted files): `vars/release.yml`, about 260 times per host in a release.
  `vars_files_cache()` keeps the parsed data of a file for as long as its path, size and modification time stay
  the same, which is what re-reading would give.

Both change no result: a compiled template is rendered afresh each time, against the variables of the moment; a
compile error is never cached (it is raised where it happened). Both rely on ansible-core internals; `install()`
checks that those exist and otherwise installs nothing (Ansible then does what it always did). Set
`DBRELEASE_CONTROLLER_CACHE=0` to switch both off.
"""

from __future__ import annotations

import os

STATS = {"hits": 0, "misses": 0, "prewarmed": 0, "vars_files_hits": 0}
_COMPILED: dict = {}
_VARS_FILES: dict = {}
_SEEN: set = set()  # ids of the roles and plays whose variables were prewarmed
_INSTALLED: dict = {}
# Above this many entries the compile cache stops growing (a safety bound; a release compiles about 700).
MAX_ENTRIES = 20000


def enabled() -> bool:
    return os.environ.get("DBRELEASE_CONTROLLER_CACHE", "1") != "0"


def install() -> dict:
    """Install both caches once per process; {name: True/False} of what is in place."""
    if _INSTALLED or not enabled():
        return dict(_INSTALLED)
    _INSTALLED["compile"] = compile_cache()
    _INSTALLED["vars_files"] = vars_files_cache()
    return dict(_INSTALLED)


def _key(kind, engine, text, options):
    return (kind, engine.basedir, str(text), options.overrides, options.escape_backslashes)


def compile_cache() -> bool:
    """Memoise TemplateEngine._compile_template and _compile_expression; False when they are not there."""
    try:
        from ansible._internal._templating import _engine
        from ansible._internal._templating._jinja_bits import AnsibleTemplate, AnsibleTemplateExpression
    except ImportError:
        return False
    engine_cls = _engine.TemplateEngine
    originals = {name: getattr(engine_cls, name, None) for name in ("_compile_template", "_compile_expression")}
    if None in originals.values() or getattr(engine_cls, "_dbrelease_cached", False):
        return False
    kinds = {"_compile_template": ("t", AnsibleTemplate), "_compile_expression": ("e", AnsibleTemplateExpression)}

    def memoised(name):
        original = originals[name]
        kind, compiled_type = kinds[name]

        def compile_(self, text, options):
            try:
                key = _key(kind, self, text, options)
                found = _COMPILED.get(key)
            except TypeError:  # an unhashable override: compile as Ansible does
                return original(self, text, options)
            if found is not None:
                STATS["hits"] += 1
                return found
            STATS["misses"] += 1
            compiled = original(self, text, options)
            # A compile error comes back as a callable that raises it: never kept, so it is raised where it occurs.
            if isinstance(compiled, compiled_type) and len(_COMPILED) < MAX_ENTRIES:
                _COMPILED[key] = compiled
            return compiled

        compile_.__name__ = name
        compile_.__doc__ = original.__doc__
        return compile_

    for name in originals:
        setattr(engine_cls, name, memoised(name))
    engine_cls._dbrelease_cached = True
    return True


def vars_files_cache() -> bool:
    """Keep the parsed data of the files the variable manager loads with cache='vaulted' (its vars_files) while
    their path, size and modification time stay the same; False when DataLoader is not as expected."""
    try:
        from ansible.parsing.dataloader import DataLoader
    except ImportError:
        return False
    original = getattr(DataLoader, "load_from_file", None)
    if original is None or getattr(DataLoader, "_dbrelease_cached", False):
        return False
    import copy

    def load_from_file(self, file_name, cache="all", unsafe=False, json_only=False, trusted_as_template=False):
        if cache != "vaulted":
            return original(self, file_name, cache=cache, unsafe=unsafe, json_only=json_only,
                            trusted_as_template=trusted_as_template)
        path = self.path_dwim(file_name)
        try:
            st = os.stat(path)
        except OSError:
            return original(self, file_name, cache=cache, unsafe=unsafe, json_only=json_only,
                            trusted_as_template=trusted_as_template)
        key = (path, st.st_mtime_ns, st.st_size, st.st_ino, json_only, trusted_as_template)
        if key in _VARS_FILES:
            STATS["vars_files_hits"] += 1
            data = _VARS_FILES[key]
        else:
            data = original(self, file_name, cache=cache, unsafe=True, json_only=json_only,
                            trusted_as_template=trusted_as_template)
            _VARS_FILES[key] = data
        return data if unsafe else copy.deepcopy(data)

    load_from_file.__doc__ = original.__doc__
    DataLoader.load_from_file = load_from_file
    DataLoader._dbrelease_cached = True
    return True


def template_strings(value, out):
    """Every string of `value` (nested dicts, lists, tuples) that may hold a template, appended to `out`."""
    if isinstance(value, str):
        if "{{" in value or "{%" in value or "{#" in value:
            out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            template_strings(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            template_strings(item, out)
    return out


def _conditionals(task):
    found = []
    for attr in ("when", "failed_when", "changed_when", "until"):
        value = getattr(task, attr, None)
        values = value if isinstance(value, list) else [value]
        found.extend(v for v in values if isinstance(v, str) and v.strip())
    return found


def _first_time(obj) -> bool:
    """Whether the variables of `obj` (a role or a play, alive for the whole run) are seen for the first time."""
    if id(obj) in _SEEN:
        return False
    _SEEN.add(id(obj))
    return True


def task_templates(task):
    """(templates, expressions): what the workers of `task` will compile. Templates: its arguments, variables,
    loop, environment and module_defaults, its role's defaults and variables, its play's variables. Expressions:
    its conditionals that are not templates."""
    templates = []
    for attr in ("args", "vars", "loop", "environment", "module_defaults", "loop_control"):
        template_strings(getattr(task, attr, None), templates)
    role = getattr(task, "_role", None)
    if role is not None and _first_time(role):
        for attr in ("_default_vars", "_role_vars"):
            template_strings(getattr(role, attr, None), templates)
    play = getattr(task, "_play", None) or getattr(getattr(task, "_parent", None), "_play", None)
    if play is not None and _first_time(play):
        template_strings(getattr(play, "vars", None), templates)
        template_strings(getattr(play, "module_defaults", None), templates)
    expressions = []
    for text in _conditionals(task):
        if "{{" in text or "{%" in text:
            templates.append(text)
        else:
            expressions.append(text)
    return templates, expressions


def prewarm(task, loader, extra_values=()):
    """Compile in this process what `task`'s workers will compile (and `extra_values`, e.g. the data of the play's
    vars_files), so that the workers forked next inherit it. Errors are left for the workers to raise."""
    if not _INSTALLED.get("compile"):
        return 0
    try:
        from ansible._internal._templating._engine import TemplateEngine, TemplateOptions
    except ImportError:
        return 0
    templates, expressions = task_templates(task)
    for value in extra_values:
        template_strings(value, templates)
    engine = TemplateEngine(loader=loader)
    template_options = TemplateOptions.DEFAULT
    # Conditionals are evaluated with escape_backslashes off (TemplateEngine.evaluate_conditional).
    expression_options = TemplateOptions(escape_backslashes=False, preserve_trailing_newlines=False)
    before = STATS["misses"]
    for text in templates:
        try:
            engine._compile_template(text, template_options)
        except Exception:  # noqa: BLE001 - the worker raises it, where Ansible reports it
            pass
    for text in expressions:
        try:
            engine._compile_expression(text, expression_options)
        except Exception:  # noqa: BLE001 - as above
            pass
    STATS["prewarmed"] += STATS["misses"] - before
    return STATS["misses"] - before
