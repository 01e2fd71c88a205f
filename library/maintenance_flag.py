#!/usr/bin/python
"""Ansible module: the maintenance flag file of the file driver (roles/maintenance), written atomically or removed."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: maintenance_flag
short_description: Put the maintenance flag file an application checks in place, or remove it
description:
  - With I(state=present), writes I(content) to I(path) with I(mode), atomically (a temporary file in the same
    directory, renamed over I(path)), so the application sees no flag or the whole flag, never a half-written one.
    Nothing changes when the file already holds I(content) with I(mode).
  - With I(state=absent), removes I(path); nothing changes when it does not exist.
  - The directory of I(path) must exist (the application owns it); the module never creates it.
  - One module call instead of the C(stat) and C(copy) module calls of C(ansible.builtin.copy); on the controller
    its action plugin runs it directly in Ansible's worker (docs/architecture.md, "Where a module runs").
options:
  path:
    description: The flag file on the host (the role's C(maintenance_flag_path)).
    type: path
    required: true
  state:
    description: C(present) switches maintenance on (the file exists), C(absent) off.
    type: str
    choices: [present, absent]
    default: present
  content:
    description: What the file holds (C(state=present)).
    type: str
    default: ""
  mode:
    description: Octal permissions of the file, as a string (C("0644")), whatever the umask.
    type: str
    default: "0644"
attributes:
  check_mode:
    support: full
    details: says what it would change and changes nothing.
  diff_mode:
    support: full
author: dbrelease
"""

EXAMPLES = r"""
- name: Write the maintenance flag file
  maintenance_flag:
    path: /var/www/shop/maintenance.flag
    content: "Maintenance for database release v1.2.0\n"
    mode: "0644"

- name: Remove it
  maintenance_flag:
    path: /var/www/shop/maintenance.flag
    state: absent
"""

RETURN = r"""
path:
  description: The flag file.
  returned: always
  type: str
state:
  description: The state it is in now (in check mode, the state it would be in).
  returned: always
  type: str
  sample: present
msg:
  description: What was done, naming the file.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease.files import parse_mode, write_atomic


def current(path: str):
    """(content bytes, mode) of the file now, or (None, None) when there is none."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        return data, os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None, None


def plan(state: str, content: bytes, mode: int, before_data, before_mode) -> str | None:
    """Pure: what must be done ("write", "chmod", "remove") or None when the file is already as wanted."""
    if state == "absent":
        return "remove" if before_data is not None else None
    if before_data != content:
        return "write"
    return "chmod" if before_mode != mode else None


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True),
                           state=dict(type="str", choices=["present", "absent"], default="present"),
                           content=dict(type="str", default=""),
                           mode=dict(type="str", default="0644")),
        supports_check_mode=True)
    path, state = module.params["path"], module.params["state"]
    try:
        mode = parse_mode(module.params["mode"])
    except ValueError:
        module.fail_json(msg="maintenance flag %s: mode %r is not octal permissions like \"0644\"; set "
                             "maintenance_flag_mode" % (path, module.params["mode"]), path=path)
    content = module.params["content"].encode("utf-8")
    directory = os.path.dirname(path) or "."
    if state == "present" and not os.path.isdir(directory):
        module.fail_json(msg="maintenance flag %s: the directory %s does not exist on this host; create it (the "
                             "application reads the flag there) or set maintenance_flag_path" % (path, directory),
                         path=path)
    before_data, before_mode = current(path)
    action = plan(state, content, mode, before_data, before_mode)
    result = {"changed": action is not None, "path": path, "state": state}
    if module._diff:
        result["diff"] = {"before_header": path, "after_header": path,
                          "before": "" if before_data is None else before_data.decode("utf-8", "replace"),
                          "after": module.params["content"] if state == "present" else ""}
    if action and not module.check_mode:
        try:
            if action == "write":
                write_atomic(path, content, mode=mode)
            elif action == "chmod":
                os.chmod(path, mode)
            else:
                os.unlink(path)
        except OSError as exc:
            module.fail_json(msg="maintenance flag %s: could not %s it: %s; check the permissions of its directory"
                                 " (maintenance_become)" % (path, action, exc.strerror or exc), path=path)
    verb = {"write": "written", "chmod": "given mode %s" % module.params["mode"], "remove": "removed"}
    result["msg"] = ("maintenance flag %s %s%s" % (path, verb[action], " (check mode)" if module.check_mode else "")
                     if action else "maintenance flag %s already %s" % (path, state))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
