"""Count new lines of log files by pattern, resuming where the last read stopped, across log rotation.

Stdlib only: this runs on the database host. A *mark* is where reading resumes and what was counted so far:

    {"path": ..., "exists": true, "inode": 1234, "dev": 64768, "offset": 10240, "size": 10240,
     "counts": {"deadlock": 1}, "samples": {"deadlock": ["..."]}}

`mark_file()` takes a mark at the end of a file (the release's start); `scan_file()` reads what was written since a
mark and returns the counts of that read, the running totals and the next mark. Only whole lines are counted: a
line still being written is left for the next read. Rotation is followed:

- the file was renamed (logrotate's default, `create`) and a new one opened: the old file is found in the same
  directory by its inode and read from the mark to its end, then the new file from its start;
- the file is shorter than the mark (`copytruncate`): it is read from its start, and the note says that lines
  written between the mark and the truncation are only in the rotated copy;
- the old file is gone or was compressed: the new file is read from its start and the note says what was missed.
"""

from __future__ import annotations

import os
import re
import stat

CHUNK = 1 << 20
SAMPLE_CHARS = 240
KINDS = ("server", "application")


class PatternError(ValueError):
    """A pattern of the configuration is invalid; the message names it."""


def compile_patterns(patterns):
    """[(name, severity, applies_to, regex)] from the configured patterns, in order; PatternError when invalid."""
    compiled = []
    seen = set()
    for index, item in enumerate(patterns or []):
        if not isinstance(item, dict) or not item.get("name") or not item.get("regex"):
            raise PatternError("log pattern #%d needs a name and a regex, got %r" % (index + 1, item))
        name = str(item["name"])
        if name in seen:
            raise PatternError("log pattern %s is defined twice" % name)
        seen.add(name)
        severity = item.get("severity") or "error"
        if severity not in ("error", "warning"):
            raise PatternError("log pattern %s: severity must be error or warning, got %r" % (name, severity))
        applies_to = item.get("applies_to") or "all"
        if applies_to not in ("all",) + KINDS:
            raise PatternError("log pattern %s: applies_to must be all, server or application, got %r"
                               % (name, applies_to))
        flags = re.IGNORECASE if item.get("ignorecase") else 0
        # A list is alternatives, each its own regex: also what lets the search stay fast (a regex that starts with
        # a literal is found by a plain string search; an alternation of several is tried at every position).
        parts = [str(part) for part in item["regex"]] if isinstance(item["regex"], (list, tuple)) else [
            str(item["regex"])]
        try:
            regex = re.compile("|".join("(?:%s)" % part for part in parts), flags)
            searches = [re.compile(part, flags | re.MULTILINE) for part in parts]
        except re.error as exc:
            raise PatternError("log pattern %s: invalid regex %r: %s" % (name, item["regex"], exc)) from None
        compiled.append((name, severity, applies_to, regex, searches))
    return compiled


def classify(line, compiled, kind):
    """Pure: the name of the first pattern that applies to `kind` and matches `line`, else None."""
    for name, _severity, applies_to, regex, _searches in compiled:
        if applies_to in ("all", kind) and regex.search(line):
            return name
    return None


def _identity(st):
    return {"inode": st.st_ino, "dev": st.st_dev, "size": st.st_size, "mtime": st.st_mtime}


def check_readable(path):
    """(stat, None) for a regular file this process can read, else (None, (status, note))."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, ("missing", "%s does not exist" % path)
    except PermissionError:
        return None, ("unreadable", "%s cannot be read: permission denied on its directory" % path)
    except OSError as exc:
        return None, ("unreadable", "%s cannot be read: %s" % (path, exc.strerror or exc))
    if not stat.S_ISREG(st.st_mode):
        return None, ("unreadable", "%s is not a regular file" % path)
    if not os.access(path, os.R_OK):
        return None, ("unreadable", "%s cannot be read by this user (uid %d): permission denied" % (
            path, os.getuid()))
    return st, None


def mark_file(path):
    """The mark at the end of `path` now: what was written before it is not counted."""
    st, problem = check_readable(path)
    mark = {"path": path, "exists": st is not None, "offset": st.st_size if st else 0, "counts": {}, "samples": {}}
    if st:
        mark.update(_identity(st))
    else:
        mark["status"], mark["note"] = problem
    return mark


def searches_for(compiled, kind):
    """The regexes that find every line some pattern of `kind` could match, each alternative on its own: only the
    lines they find are classified (most log lines match nothing, and one search over a whole block is far cheaper
    than every pattern on every line)."""
    return [search for _name, _severity, applies_to, _regex, searches in compiled if applies_to in ("all", kind)
            for search in searches]


class _Counter:
    def __init__(self, compiled, kind, samples, counts=None, kept=None):
        self.compiled, self.kind, self.samples = compiled, kind, samples
        self.searches = searches_for(compiled, kind)
        self.new = {}
        self.counts = dict(counts or {})
        self.kept = {k: list(v) for k, v in (kept or {}).items()}
        self.lines = 0

    def block(self, data):
        """Count the whole lines of `data` (bytes ending with a newline, or one last line without)."""
        text = data.decode("utf-8", errors="replace")
        self.lines += text.count("\n") + (0 if text.endswith("\n") else 1)
        starts = set()
        for search in self.searches:
            for found in search.finditer(text):
                starts.add(text.rfind("\n", 0, found.start()) + 1)
        for start in sorted(starts):
            end = text.find("\n", start)
            self._classify(text[start:len(text) if end < 0 else end].rstrip("\r"))

    def line(self, raw):
        self.block(raw)

    def _classify(self, text):
        name = classify(text, self.compiled, self.kind)
        if name is None:
            return
        self.new[name] = self.new.get(name, 0) + 1
        self.counts[name] = self.counts.get(name, 0) + 1
        kept = self.kept.setdefault(name, [])
        if len(kept) < self.samples:
            kept.append(text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS - 1] + "…")


def _read_lines(path, start, counter, max_bytes, partial_ok):
    """Count whole lines of `path` from byte `start`; returns (end offset consumed, bytes read, bytes skipped).

    At most `max_bytes` are read: when more was written, the oldest part is skipped (and reported). With
    `partial_ok` a last line without its newline is counted too (a rotated file that no longer grows)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        if start > end:
            start = end
        skipped = 0
        if max_bytes and end - start > max_bytes:
            skipped = end - start - max_bytes
            handle.seek(start + skipped)
            handle.readline()  # resume at a line boundary
            skipped = handle.tell() - start
            start = handle.tell()
        handle.seek(start)
        offset = start
        buffer = b""
        while offset + len(buffer) < end:
            chunk = handle.read(min(CHUNK, end - offset - len(buffer)))
            if not chunk:
                break
            buffer += chunk
            cut = buffer.rfind(b"\n") + 1
            if cut:
                counter.block(buffer[:cut])
                offset += cut
                buffer = buffer[cut:]
            if len(buffer) >= CHUNK * 4:  # a line of more than 4 MiB: count it as one and go on
                counter.line(buffer)
                offset += len(buffer)
                buffer = b""
        if buffer and partial_ok:
            counter.line(buffer)
            offset += len(buffer)
    return offset, offset - start, skipped


COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z")


def _find_rotated(path, mark):
    """The file in `path`'s directory that has the mark's inode (the renamed old log), else None.

    Inode numbers are reused once a file is deleted, so a candidate must also be at least as long as the mark and
    not older than it, and not be a compressed file."""
    directory = os.path.dirname(path) or "."
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (stat.S_ISREG(st.st_mode) and st.st_ino == mark.get("inode") and st.st_dev == mark.get("dev")
                and st.st_size >= int(mark.get("offset") or 0) and st.st_mtime >= float(mark.get("mtime") or 0)
                and not entry.name.lower().endswith(COMPRESSED)):
            return entry.path
    return None


def scan_file(path, mark, compiled, kind, samples=3, max_bytes=64 << 20):
    """Read what `path` got since `mark` (None: no start position known); returns the file's scan result.

    Result: {path, kind, status (ok, missing, unreadable, no_mark), note, new_counts, counts (since the mark's
    origin), samples, bytes_read, lines_read, skipped_bytes, rotated, mark (where the next read resumes)}."""
    counter = _Counter(compiled, kind, samples, (mark or {}).get("counts"), (mark or {}).get("samples"))
    notes = []
    out = {"path": path, "kind": kind, "status": "ok", "rotated": False, "bytes_read": 0, "skipped_bytes": 0}

    def account(read, skipped):
        out["bytes_read"] += read
        out["skipped_bytes"] += skipped
        if skipped:
            notes.append("%d bytes were skipped (more than %d bytes were written since the last read)"
                         % (skipped, max_bytes))

    rotated_from = None
    old_mark = None
    if mark and mark.get("exists"):
        old = _find_rotated(path, mark)
        current = None
        try:
            current = os.stat(path)
        except OSError:
            pass
        same = current is not None and (current.st_ino, current.st_dev) == (mark.get("inode"), mark.get("dev"))
        if not same:
            out["rotated"] = True
            if old:
                rotated_from = old
                try:
                    old_end, read, skipped = _read_lines(old, int(mark.get("offset") or 0), counter, max_bytes,
                                                         True)
                    account(read, skipped)
                    # Until a new file appears the server may still write to the old one: resume there.
                    old_mark = {"path": path, "exists": True, "offset": old_end, "inode": mark.get("inode"),
                                "dev": mark.get("dev"), "size": old_end}
                    notes.append("rotated: read the rest of %s, then %s from its start" % (old, path))
                except OSError as exc:
                    notes.append("rotated to %s, which cannot be read (%s)" % (old, exc.strerror or exc))
            else:
                notes.append("rotated since the last read and the old file is gone or compressed: lines written "
                             "between the last read and the rotation were not read")

    st, problem = check_readable(path)
    if st is None:
        out["status"], note = problem
        notes.append(note)
        next_mark = old_mark or {"path": path, "exists": False, "offset": 0}
    else:
        start = 0
        if mark is None:
            # No start position: nothing before now can be attributed to the release.
            out["status"] = "no_mark"
            notes.append("no start position was recorded for %s, so counting starts now" % path)
            start = st.st_size
        elif mark.get("exists") and not out["rotated"]:
            start = int(mark.get("offset") or 0)
            if st.st_size < start:
                out["rotated"] = True
                notes.append("%s is shorter than at the last read (truncated, as logrotate's copytruncate does): "
                             "read from its start; lines written between the last read and the truncation are "
                             "only in the rotated copy" % path)
                start = 0
        elif not mark.get("exists") and not out["rotated"]:
            notes.append("%s did not exist at the last read: read from its start" % path)
        try:
            offset, read, skipped = _read_lines(path, start, counter, max_bytes, False)
            account(read, skipped)
        except OSError as exc:
            out["status"] = "unreadable"
            notes.append("%s cannot be read: %s" % (path, exc.strerror or exc))
            offset = start
        next_mark = {"path": path, "exists": True, "offset": offset}
        next_mark.update(_identity(st))
    next_mark["counts"] = counter.counts
    next_mark["samples"] = counter.kept
    out.update(new_counts=counter.new, counts=counter.counts, samples=counter.kept, lines_read=counter.lines,
               note="; ".join(notes), mark=next_mark)
    if rotated_from:
        out["rotated_from"] = rotated_from
    return out


def resolve_server_log(log_error, datadir):
    """Pure: (path or None, note) for the server's error log from @@log_error and @@datadir."""
    value = (log_error or "").strip()
    if not value or value.lower() == "stderr":
        return None, ("the server writes its error log to stderr (log_error is %r): the service manager or "
                      "journald keeps it; set the error log's path explicitly to read a file" % (log_error or ""))
    if not os.path.isabs(value):
        value = os.path.normpath(os.path.join(datadir or "", value))
    return value, ""
