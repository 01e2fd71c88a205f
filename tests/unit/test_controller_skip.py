"""Skipped tasks evaluated in Ansible's main process (plugin_utils/controller_skip.py).

Against the pinned ansible-core itself: a playbook whose tasks are skipped in every way a release skips them
(registered, a templated no_log, a block's condition, run_once, a handler, a play-context variable) prints the same
output, registers the same results and ends with the same recap with the shortcut as without it; and the tasks it must
leave to a worker (a conditional that fails, a loop, delegate_to, a lookup) are left to a worker.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOK = """
- name: Skipped tasks, evaluated in the controller or in a worker, look the same
  hosts: all
  gather_facts: false
  vars:
    hide_secrets: true
  handlers:
    - name: Report the change
      ansible.builtin.debug:
        msg: "handler ran on {{ inventory_hostname }}"
      when: n == 1
  tasks:
    - name: Skipped where n is even, registered
      ansible.builtin.debug:
        msg: "ran on {{ inventory_hostname }}"
      register: odd_only
      changed_when: true
      notify: Report the change
      when: n is odd
    - name: What register kept
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} skipped={{ odd_only.skipped | default(false) }}
          cond={{ odd_only.false_condition | default('-') }} changed={{ odd_only.changed }}"
    - name: A secret task, skipped
      ansible.builtin.debug:
        msg: "secret {{ inventory_hostname }}"
      register: secret
      no_log: "{{ hide_secrets }}"
      when: n > 100
    - name: The secret task's result is censored too
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} secret={{ secret }}"
    - name: A conditional that fails
      ansible.builtin.debug:
        msg: never
      when: missing_variable.attribute == 1
      ignore_errors: true
    - name: A block skipped as a whole
      when: word == 'w2'
      block:
        - name: Inside the block
          ansible.builtin.debug:
            msg: "block {{ inventory_hostname }}"
        - name: Inside the block, with its own condition
          ansible.builtin.debug:
            msg: "block again {{ inventory_hostname }}"
          when: n > 0
    - name: A loop, per item
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} item {{ item }}"
      loop: [1, 2]
      when: item + n > 3
    - name: Delegated
      ansible.builtin.debug:
        msg: "delegated from {{ inventory_hostname }}"
      delegate_to: h1
      when: n == 3
    - name: Once for all, skipped
      ansible.builtin.set_fact:
        everyone: true
      run_once: true
      when: n == 100
    - name: Everyone saw the run_once
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} everyone={{ everyone | default('unset') }}"
    - name: A play-context variable
      ansible.builtin.debug:
        msg: "not local"
      when: ansible_connection != 'local'
    - name: A lookup is left to the worker
      ansible.builtin.debug:
        msg: never
      when: lookup('ansible.builtin.env', 'HOME') == ''
"""

# Skipped without a worker: h2's registered task (1), the secret task (3), the block's tasks on h1 and h3 (4), the
# play-context variable (3), the run_once (1) and h3's handler (1). Everything else goes to a worker.
SKIPPED_HERE = 13


def run_play(tmp_path, skip):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n" + "".join(
        "    h%d: {ansible_connection: local, ansible_python_interpreter: %s, word: w%d, n: %d}\n"
        % (i, sys.executable, i, i) for i in range(1, 4)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="5",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", DBRELEASE_CONTROLLER_SKIP="1" if skip else "0")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "play.yml", "-i", "hosts.yml", "-vv"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = re.search(r"controller_skip: (\d+) skipped tasks evaluated here without a worker, (\d+) sent", proc.stdout)
    lines = sorted(line.rstrip() for line in proc.stdout.splitlines() if not line.startswith("controller_"))
    return lines, said


def test_a_playbook_prints_and_registers_the_same_with_the_shortcut_as_without(tmp_path):
    (with_skip, said), (without, unsaid) = run_play(tmp_path, True), run_play(tmp_path, False)
    assert with_skip == without
    assert said and unsaid is None
    assert int(said.group(1)) == SKIPPED_HERE, said.group(0)
    text = "\n".join(with_skip)
    assert "h2 skipped=True cond=n is odd changed=False" in text
    assert "h1 skipped=False cond=- changed=True" in text
    assert "handler ran on h1" in text and "handler ran on h3" not in text
    assert "'no_log: true' was specified" in text and "secret h" not in text
    assert re.search(r"h1 +: ok=\d+ +changed=1 .* skipped=\d+ .* ignored=1", text)
    assert "h3 item 1" in text and "h1 item 1" not in text
