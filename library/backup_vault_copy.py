#!/usr/bin/python
"""Ansible module: push a verified backup (and its sidecars) to a vault host over SSH, verified there, atomically."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_vault_copy
short_description: Copy a verified backup to a vault host with rsync over SSH, re-verify its sha256 there
description:
  - Runs on the database host and pushes the backup straight to the vault with C(rsync) over C(ssh) - the dump
    never passes through the controller (nor its memory), and the transfer runs at rsync speed.
  - The files land in a hidden staging directory of this run, C(<dest_dir>/.<name>.incoming-<run>/), on the vault
    (staging directories of interrupted runs are removed first - a receiver left behind by a cut connection can
    never write into this run's copy); the vault then
    flushes them to disk (C(sync)), computes the dump's sha256 itself and compares it with I(sha256). Only when
    they match are the sidecars and then the dump renamed to their final names (the dump last - its name appearing
    is the commit point). On a mismatch the staging directory is removed and the module fails, naming the vault,
    the file, the expected and the found checksum - nothing unverified is ever left under a backup's name.
  - If the vault cannot be reached, the module fails with the SSH error and the address it tried.
  - Idempotent - when the vault already holds the file under its final name with the expected sha256 (computed on
    the vault) and the sidecars, nothing is copied. A file under the backup's name with a different checksum is
    replaced by a verified copy, with a warning.
  - Needs C(rsync), C(ssh) and C(sha256sum) on the database host and C(rsync), C(sha256sum) (or C(openssl),
    preferred when present, as it is several times faster), C(sync) on the vault, and a key on the database host that
    the vault accepts (I(ssh_key)).
options:
  src:
    description: The backup file on the database host (its final, verified name).
    type: path
    required: true
  sha256:
    description: The backup's expected sha256 (hex), as computed while it was written. Required, except in
      check mode when the backup was not taken (a dry run), when only the vault is probed.
    type: str
  sidecars:
    description:
      - Files copied with the backup, committed just before it (C(<src>.sha256), C(<src>.manifest.json)).
      - A C(.sha256) sidecar must name the same digest as I(sha256).
    type: list
    elements: path
    default: []
  vault:
    description: The vault's inventory name, used in messages.
    type: str
    required: true
  address:
    description: Address of the vault as the database host reaches it.
    type: str
    required: true
  port:
    description: SSH port of the vault.
    type: int
    default: 22
  user:
    description: SSH user on the vault; empty for ssh's default (the user running the module).
    type: str
    default: ""
  dest_dir:
    description: Directory on the vault for this host's backups (created if missing).
    type: str
    required: true
  ssh_key:
    description: Private key on the database host for the vault (empty to use the user's default keys).
    type: path
  ssh_options:
    description: Extra C(ssh) arguments, for example C([-o, UserKnownHostsFile=/etc/dbrelease/known_hosts]).
    type: list
    elements: str
    default: []
  connect_timeout:
    description: Seconds to wait for the vault's SSH port; a vault that stops answering mid-copy fails after
      about three times this (SSH keepalives).
    type: int
    default: 10
  rsync_path:
    description: The rsync command on the vault (for example C(sudo rsync)).
    type: str
    default: rsync
  fsync:
    description: Flush the copy to the vault's disk before verifying and committing it.
    type: bool
    default: true
  ssh_ciphers:
    description:
      - The SSH ciphers the module asks for, in order of preference (C(ssh -o Ciphers=...)).
      - C(auto) (the default) prefers AES-GCM where this host's CPU has AES instructions (about 0.4 CPU-seconds
        less per 512 MB than OpenSSH's default ChaCha20-Poly1305, on both ends, on a copy that is CPU-bound on a
        small host), followed by the other modern ciphers, restricted to those the local C(ssh) supports; without AES
        instructions it leaves the choice to C(ssh). The vault picks the first it also supports.
      - An empty string leaves the choice to C(ssh) and its configuration; any other value is passed as
        C(Ciphers=<value>). A C(Ciphers) option in I(ssh_options) wins over this one.
    type: str
    default: auto
attributes:
  check_mode:
    support: full
    details: probes the vault (read-only) and reports whether a copy would be made; copies nothing.
  diff_mode:
    support: none
author: dbrelease
"""

EXAMPLES = r"""
- name: Copy the backup to the vault
  backup_vault_copy:
    src: /var/backups/dbrelease/app_v1.2.0_20261128T061814Z.sql.gz
    sha256: "{{ __backup_result.sha256 }}"
    sidecars:
      - /var/backups/dbrelease/app_v1.2.0_20261128T061814Z.sql.gz.sha256
      - /var/backups/dbrelease/app_v1.2.0_20261128T061814Z.sql.gz.manifest.json
    vault: vault1
    address: 10.0.0.20
    user: backup
    dest_dir: /srv/vault/db1
    ssh_key: /etc/dbrelease/vault_ed25519
    ssh_options: [-o, UserKnownHostsFile=/etc/dbrelease/known_hosts, -o, StrictHostKeyChecking=yes]
"""

RETURN = r"""
dest:
  description: The backup's path on the vault.
  returned: always
  type: str
sha256:
  description: The sha256 the vault computed for its copy.
  returned: when the vault holds a verified copy
  type: str
bytes:
  description: Size of the backup.
  returned: always
  type: int
copied:
  description: Whether the dump was transferred in this run.
  returned: always
  type: bool
replaced_corrupt:
  description: The sha256 of a file that was under the backup's name on the vault with the wrong checksum.
  returned: when such a file was replaced
  type: str
seconds:
  description: Wall time of the copy, verification and commit.
  returned: always
  type: float
durations_s:
  description: Where the time went, in seconds - C(probe) (what the vault holds, staging directory), C(copy)
    (rsync), C(verify_commit) (flush, sha256 on the vault, renames).
  returned: when the dump was copied
  type: dict
ssh_ciphers:
  description: The cipher preference the module gave ssh (empty when it left the choice to ssh).
  returned: success
  type: str
record:
  description: What the release record keeps (phases.backup.vault) - C({vault - {<vault> - <dest>}}).
  returned: success
  type: dict
"""

import os
import secrets
import shlex
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

EXIT_MISMATCH = 3


# Preferred ciphers where the CPU has AES instructions: AES-GCM first (hardware-accelerated, and OpenSSH's
# ChaCha20-Poly1305, its default, costs more CPU per byte), then the other modern ciphers so that any OpenSSH >= 6.5
# vault finds one it accepts.
AES_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
             "aes128-ctr", "aes192-ctr", "aes256-ctr")


def cpu_has_aes(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo's text shows AES instructions (x86 `flags`, ARM `Features`)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features") and "aes" in value.split():
            return True
    return False


def cipher_preference(setting: str, cpuinfo: str, supported: list[str]) -> str:
    """The value for `-o Ciphers=`, or "" to leave the choice to ssh (see the ssh_ciphers option)."""
    setting = (setting or "").strip()
    if setting != "auto":
        return setting
    if not cpu_has_aes(cpuinfo):
        return ""
    usable = [c for c in AES_FIRST if c in supported]
    return ",".join(usable) if usable and usable[0].startswith("aes") else ""


def ssh_command(p, control_path=None, ciphers="") -> list[str]:
    """The ssh client command (without the destination) for the vault.

    With `control_path`, the module's SSH sessions (probe, rsync, commit) share one connection: the first opens it
    (a master that stays 30 s after its last session, and that the module closes when it is done), the others
    skip the key exchange and authentication. `ciphers` goes after the user's ssh_options: ssh keeps the first
    value it is given for an option, so theirs wins."""
    cmd = ["ssh", "-p", str(p["port"]), "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % p["connect_timeout"],
           "-o", "ServerAliveInterval=%d" % max(1, p["connect_timeout"]), "-o", "ServerAliveCountMax=3"]
    if control_path:
        cmd += ["-o", "ControlMaster=auto", "-o", "ControlPath=%s" % control_path, "-o", "ControlPersist=30"]
    if p.get("ssh_key"):
        cmd += ["-i", p["ssh_key"], "-o", "IdentitiesOnly=yes"]
    cmd += list(p.get("ssh_options") or [])
    if ciphers:
        cmd += ["-o", "Ciphers=%s" % ciphers]
    return cmd


def staging_name(name: str, run: str) -> str:
    """This run's hidden staging directory for backup `name` (relative to the vault's directory)."""
    return ".%s.incoming-%s" % (name, run)


def staging_dir(dest_dir: str, name: str, run: str) -> str:
    return "%s/%s" % (dest_dir.rstrip("/"), staging_name(name, run))


# sha256 of a file in the current directory, printed as 64 hex digits: openssl when the vault has it (it uses the
# CPU's SHA extensions: about 4x faster than coreutils' sha256sum here, which it falls back to).
SHA256_OF = ('sha256_of() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "./$1" | cut -c1-64; '
             'else sha256sum -- "$1" | cut -c1-64; fi; }')


def probe_script(dest_dir: str, name: str, sidecars: list[str], expected: str | None = None, run: str = "") -> str:
    """Report the backup (size, sha256) and the sidecars already under their final names.

    Read-only, except with `expected` (the backup's sha256, not in check mode) and `run`: then it also removes
    the staging directories that interrupted runs left for this backup and, when the vault does not already hold
    the backup with that checksum, creates this run's staging directory and prints `M` (one SSH round trip less)."""
    q = shlex.quote
    lines = [
        SHA256_OF,
        "found=",
        "if cd -- %s 2>/dev/null; then" % q(dest_dir),
        "  if [ -f %s ]; then found=$(sha256_of %s); printf 'F %%s %%s\\n' \"$(stat -c %%s -- %s)\" \"$found\"; fi"
        % (q(name), q(name), q(name)),
    ]
    for side in sidecars:
        lines.append("  if [ -f %s ]; then printf 'S %%s %%s\\n' \"$(stat -c %%s -- %s)\" %s; fi"
                     % (q(side), q(side), q(side)))
    lines.append("fi")
    if expected and run:
        lines.append("rm -rf -- %s/%s*" % (q(dest_dir.rstrip("/")), q(".%s.incoming-" % name)))
        lines.append("if [ \"$found\" != %s ]; then mkdir -p -- %s && echo M; fi"
                     % (q(expected.lower()), q(staging_dir(dest_dir, name, run))))
    return "\n".join(lines)


def parse_probe(out: str) -> dict:
    found = {"final": None, "sidecars": {}, "staged": False}
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if parts[0] == "F" and len(parts) == 3:
            found["final"] = {"bytes": int(parts[1]), "sha256": parts[2].strip()}
        elif parts[0] == "S" and len(parts) == 3:
            found["sidecars"][parts[2]] = int(parts[1])
        elif parts == ["M"]:
            found["staged"] = True
    return found


def commit_script(dest_dir: str, name: str, sidecars: list[str], sha256: str, fsync: bool, run: str) -> str:
    """Verify the staged copy on the vault, then rename sidecars and dump into place; on mismatch remove it.

    The flush to disk (sync) runs while the checksum is computed (one waits on the disk, the other on the CPU);
    both must succeed before anything is renamed."""
    q = shlex.quote
    stage = staging_dir(dest_dir, name, run)
    rel = staging_name(name, run)
    staged = [name] + sidecars
    lines = ["set -e", SHA256_OF, "cd -- %s" % q(stage)]
    if fsync:
        lines.append("sync -- %s & flushing=$!" % " ".join(q(f) for f in staged))
    lines.append("found=$(sha256_of %s)" % q(name))
    if fsync:
        lines.append("wait $flushing")
    lines += [
        "if [ \"$found\" != %s ]; then" % q(sha256),
        "  cd / && rm -rf -- %s" % q(stage),
        "  echo \"MISMATCH $found\"",
        "  exit %d" % EXIT_MISMATCH,
        "fi",
        "cd -- %s" % q(dest_dir),
    ]
    for side in sidecars:
        lines.append("mv -f -- %s %s" % (q("%s/%s" % (rel, side)), q(side)))
    lines += [
        "mv -f -- %s %s" % (q("%s/%s" % (rel, name)), q(name)),
        "rmdir -- %s" % q(rel),
    ]
    if fsync:
        lines.append("sync -- .")
    lines.append("echo \"OK $found\"")
    return "\n".join(lines)


class VaultError(Exception):
    pass


class VaultCopy:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.target = ("%s@%s" % (self.p["user"], self.p["address"])) if self.p["user"] else self.p["address"]
        self.where = "vault %s (%s:%d)" % (self.p["vault"], self.target, self.p["port"])
        self.control_path = None
        self.run_id = "%d-%s" % (os.getpid(), secrets.token_hex(4))
        self.ciphers = ""

    def ssh_command(self):
        return ssh_command(self.p, self.control_path, self.ciphers)

    def ssh(self, script: str):
        cmd = self.ssh_command() + [self.target, "sh -c %s" % shlex.quote(script)]
        return self.module.run_command(cmd)

    def choose_ciphers(self):
        if (self.p["ssh_ciphers"] or "").strip() != "auto":
            return cipher_preference(self.p["ssh_ciphers"], "", [])
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            return ""
        if not cpu_has_aes(cpuinfo):
            return ""
        rc, out, _ = self.module.run_command(["ssh", "-Q", "cipher"])
        return cipher_preference("auto", cpuinfo, out.split() if rc == 0 else [])

    def run(self):
        private = tempfile.mkdtemp(prefix="dbr-vault-")  # 0700: the shared connection's socket lives here
        self.control_path = os.path.join(private, "ssh")
        self.ciphers = self.choose_ciphers()
        try:
            result = self.copy()
            result["ssh_ciphers"] = self.ciphers
            return result
        finally:
            if os.path.exists(self.control_path):
                self.module.run_command(self.ssh_command() + ["-O", "exit", self.target])
            shutil.rmtree(private, ignore_errors=True)

    def unreachable(self, rc, err, doing):
        err_lines = [line for line in (err or "").strip().splitlines() if line.strip()]
        detail = err_lines[-1] if err_lines else "rc=%d" % rc
        return VaultError("%s unreachable over SSH while %s: %s. Nothing was written under the backup's name; "
                          "check the vault is up and accepts the key (backup_vault_ssh_key), then rerun."
                          % (self.where, doing, detail))

    def copy(self):
        p = self.p
        src = p["src"]
        name = os.path.basename(src)
        dest_dir = p["dest_dir"].rstrip("/") or "/"
        if self.module.check_mode and (not p["sha256"] or not os.path.isfile(src)):
            rc, out, err = self.ssh("true")
            if rc != 0:
                raise self.unreachable(rc, err, "checking it can be reached")
            return {"changed": True, "dest": "%s/%s" % (dest_dir, name), "bytes": 0, "copied": False,
                    "vault": p["vault"], "msg": "dry run: the backup would be copied to %s" % self.where}
        if not p["sha256"] or len(p["sha256"]) != 64:
            raise VaultError("sha256 must be the backup's 64 hex digits, got %r" % (p["sha256"] or "")[:80])
        if not os.path.isfile(src):
            raise VaultError("backup %s does not exist on this host: nothing to copy to %s" % (src, self.where))
        sidecars = []
        for side in p["sidecars"]:
            if not os.path.isfile(side):
                raise VaultError("sidecar %s of backup %s does not exist on this host" % (side, name))
            if os.path.dirname(os.path.abspath(side)) != os.path.dirname(os.path.abspath(src)):
                raise VaultError("sidecar %s is not in the backup's directory" % side)
            if side.endswith(".sha256"):
                with open(side) as fh:
                    digest = (fh.read().split() or [""])[0].lower()
                if digest != p["sha256"].lower():
                    raise VaultError("sidecar %s names sha256 %s, not the backup's %s: refusing to copy an "
                                     "inconsistent backup" % (side, digest, p["sha256"]))
            sidecars.append(os.path.basename(side))
        size = os.path.getsize(src)
        result = {"changed": False, "dest": "%s/%s" % (dest_dir, name), "bytes": size, "copied": False,
                  "vault": p["vault"]}
        started = time.monotonic()

        rc, out, err = self.ssh(probe_script(dest_dir, name, sidecars,
                                             None if self.module.check_mode else p["sha256"], self.run_id))
        if rc == 255:
            raise self.unreachable(rc, err, "checking what it holds")
        if rc != 0:
            raise VaultError("checking what %s holds in %s, or preparing the copy there, failed (rc=%d): %s"
                             % (self.where, dest_dir, rc, (err or out).strip()[-500:]))
        found = parse_probe(out)
        final = found["final"]
        if final and final["sha256"] == p["sha256"].lower() and final["bytes"] == size and all(
                found["sidecars"].get(s) == os.path.getsize(os.path.join(os.path.dirname(src), s))
                for s in sidecars):
            result.update(sha256=final["sha256"], seconds=round(time.monotonic() - started, 3))
            return result
        if final and final["sha256"] != p["sha256"].lower():
            result["replaced_corrupt"] = final["sha256"]
            self.module.warn("%s held %s with sha256 %s instead of %s: %s it with a verified copy"
                             % (self.where, name, final["sha256"], p["sha256"],
                                "would replace" if self.module.check_mode else "replacing"))
        result["changed"] = True
        if self.module.check_mode:
            result["seconds"] = round(time.monotonic() - started, 3)
            return result

        stage = staging_dir(dest_dir, name, self.run_id)
        if not found["staged"]:  # the vault holds the right dump but not all its sidecars
            rc, out, err = self.ssh("mkdir -p -- %s" % shlex.quote(stage))
            if rc != 0:
                raise self.unreachable(rc, err, "creating %s" % stage)
        rsync = ["rsync", "--times", "--chmod=F0640", "--rsync-path=%s" % p["rsync_path"],
                 "-e", " ".join(shlex.quote(a) for a in self.ssh_command()),
                 src] + [os.path.join(os.path.dirname(src), s) for s in sidecars] + ["%s:%s/" % (self.target, stage)]
        durations = result["durations_s"] = {"probe": round(time.monotonic() - started, 3)}
        mark = time.monotonic()
        rc, out, err = self.module.run_command(rsync)
        durations["copy"] = round(time.monotonic() - mark, 3)
        mark = time.monotonic()
        if rc != 0:
            if rc == 255 or "connection" in (err or "").lower() or "ssh" in (err or "").lower():
                raise self.unreachable(rc, err, "copying %s" % name)
            raise VaultError("rsync of %s to %s failed (rc=%d): %s. Nothing was left under the backup's name (the "
                             "hidden %s is removed by the next run); rerun to copy it again." % (name, self.where, rc,
                                                                                  (err or out).strip()[-500:], stage))
        result["copied"] = True

        rc, out, err = self.ssh(commit_script(dest_dir, name, sidecars, p["sha256"].lower(), p["fsync"],
                                                self.run_id))
        if rc == EXIT_MISMATCH and "MISMATCH" in out:
            found_sha = out.split("MISMATCH", 1)[1].split()[0] if out.split("MISMATCH", 1)[1].split() else "?"
            raise VaultError("checksum mismatch on %s for %s after the copy: expected sha256 %s, the vault computed "
                             "%s. The copy was removed; nothing was left under the backup's name. Check the vault's "
                             "disk and rerun." % (self.where, name, p["sha256"], found_sha))
        if rc != 0:
            raise self.unreachable(rc, err, "verifying and committing %s" % name) if rc == 255 else VaultError(
                "verifying and committing %s on %s failed (rc=%d): %s" % (name, self.where, rc, (err or out).strip()))
        result["sha256"] = out.split("OK", 1)[1].split()[0]
        durations["verify_commit"] = round(time.monotonic() - mark, 3)
        result["seconds"] = round(time.monotonic() - started, 3)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            sha256=dict(type="str"),
            sidecars=dict(type="list", elements="path", default=[]),
            vault=dict(type="str", required=True),
            address=dict(type="str", required=True),
            port=dict(type="int", default=22),
            user=dict(type="str", default=""),
            dest_dir=dict(type="str", required=True),
            ssh_key=dict(type="path"),
            ssh_options=dict(type="list", elements="str", default=[]),
            connect_timeout=dict(type="int", default=10),
            rsync_path=dict(type="str", default="rsync"),
            fsync=dict(type="bool", default=True),
            ssh_ciphers=dict(type="str", default="auto"),
        ),
        supports_check_mode=True,
    )
    try:
        result = VaultCopy(module).run()
    except VaultError as exc:
        module.fail_json(msg=str(exc), vault=module.params["vault"])
    result["record"] = {"vault": {module.params["vault"]: result["dest"]}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
