"""Pure logic for grant verification: parse SHOW GRANTS output and compare with what the inventory expects.

Handles both MariaDB (`GRANT ALL PRIVILEGES ON *.* TO ...`) and MySQL 8 (static privileges spelled out one by one,
dynamic privileges on a line of their own). Secrets in SHOW GRANTS output (password hashes, auth strings) are
removed before anything is returned.
"""

from __future__ import annotations

import re

# Static privileges that MySQL 8 lists instead of "ALL PRIVILEGES" on *.* (from the MySQL 8.0 reference manual,
# "Privileges Provided by MySQL", static privileges).
MYSQL8_STATIC_GLOBAL = frozenset((
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "RELOAD", "SHUTDOWN", "PROCESS", "FILE",
    "REFERENCES", "INDEX", "ALTER", "SHOW DATABASES", "SUPER", "CREATE TEMPORARY TABLES", "LOCK TABLES",
    "EXECUTE", "REPLICATION SLAVE", "REPLICATION CLIENT", "CREATE VIEW", "SHOW VIEW", "CREATE ROUTINE",
    "ALTER ROUTINE", "CREATE USER", "EVENT", "TRIGGER", "CREATE TABLESPACE", "CREATE ROLE", "DROP ROLE",
))

_GRANT_RE = re.compile(r"^GRANT\s+(?P<privs>.+?)\s+ON\s+(?P<object>\S+(?:\s+\S+)?)\s+TO\s+(?P<rest>.*)$",
                       re.IGNORECASE | re.DOTALL)
_SECRET_RE = re.compile(r"\s+(IDENTIFIED\s+(BY\s+PASSWORD|VIA|WITH)\s+.*?)(?=\s+WITH\s+|\s+REQUIRE\s+|$)",
                        re.IGNORECASE)


class GrantSpecError(ValueError):
    pass


def redact(line: str) -> str:
    """A SHOW GRANTS line without password hashes or authentication strings."""
    return _SECRET_RE.sub(" IDENTIFIED <redacted>", line)


def _norm_object(obj: str) -> str:
    obj = obj.strip()
    for prefix in ("FUNCTION ", "PROCEDURE ", "TABLE "):
        if obj.upper().startswith(prefix):
            obj = obj[len(prefix):]
    return obj.replace("`", "").replace('"', "")


def _split_privs(privs: str):
    """'SELECT, INSERT (col), ALL PRIVILEGES' -> {'SELECT', 'INSERT (col)', 'ALL'}."""
    out = set()
    depth = 0
    current = ""
    for char in privs:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            out.add(current)
            current = ""
        else:
            current += char
    out.add(current)
    result = set()
    for priv in out:
        priv = " ".join(priv.split()).upper()
        if not priv:
            continue
        if priv == "ALL PRIVILEGES":
            priv = "ALL"
        result.add(priv)
    return result


def parse_show_grants(lines):
    """{object: set(privileges)} from SHOW GRANTS lines; 'GRANT' (the grant option) counts as a privilege.

    Role grants (`GRANT role TO user`) and proxy grants are ignored: they carry no object.
    """
    found = {}
    for line in lines:
        match = _GRANT_RE.match(line.strip())
        if not match:
            continue
        privs = _split_privs(match.group("privs"))
        if "PROXY" in privs:
            continue
        obj = _norm_object(match.group("object"))
        if "USAGE" in privs:
            privs.discard("USAGE")
        if re.search(r"WITH\s+GRANT\s+OPTION", match.group("rest"), re.IGNORECASE):
            privs.add("GRANT")
        found.setdefault(obj, set()).update(privs)
    return {obj: privs for obj, privs in found.items() if privs}


def parse_priv_spec(spec: str):
    """community.mysql's `priv` syntax, 'db.*:SELECT,INSERT/*.*:ALL,GRANT' -> {object: set(privileges)}."""
    wanted = {}
    if not spec or not str(spec).strip():
        raise GrantSpecError("empty privilege specification; expected 'db.table:PRIV,PRIV[/db.table:PRIV]'")
    for part in str(spec).split("/"):
        if ":" not in part:
            raise GrantSpecError("privilege specification %r lacks ':' (expected 'db.table:PRIV,PRIV')" % part)
        obj, _, privs = part.rpartition(":")
        obj = _norm_object(obj)
        if "." not in obj:
            raise GrantSpecError("object %r in privilege specification must be 'db.table' or 'db.*'" % obj)
        parsed = _split_privs(privs)
        if not parsed:
            raise GrantSpecError("no privileges listed for %r" % obj)
        wanted.setdefault(obj, set()).update(parsed)
    return wanted


def _expand_all(privs, flavor):
    """On MySQL 8, 'ALL' on *.* is shown as the list of static privileges: treat that list as ALL."""
    if flavor == "mysql" and MYSQL8_STATIC_GLOBAL <= privs:
        return (privs - MYSQL8_STATIC_GLOBAL) | {"ALL"}
    return privs


def compare(expected, found, flavor="mariadb"):
    """{'missing': {obj: [privs]}, 'extra': {obj: [privs]}} between two {object: set(privileges)} maps.

    'ALL' found on an object covers every single privilege expected on it (except GRANT, which is separate).
    """
    missing, extra = {}, {}
    found = {obj: _expand_all(set(privs), flavor) for obj, privs in found.items()}
    for obj, want in expected.items():
        have = found.get(obj, set())
        lacking = {p for p in want if p not in have and not (p != "GRANT" and "ALL" in have)}
        if lacking:
            missing[obj] = sorted(lacking)
    for obj, have in found.items():
        want = expected.get(obj, set())
        surplus = {p for p in have if p not in want and not (p != "GRANT" and "ALL" in want)}
        if surplus:
            extra[obj] = sorted(surplus)
    return {"missing": missing, "extra": extra}
