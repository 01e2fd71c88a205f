#!/usr/bin/python
"""Ansible module: an annotated git tag, created idempotently and pushed once (controller side)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: git_tag
short_description: Create an annotated git tag idempotently, never move it, push it when a remote is given
description:
  - Creates the annotated tag I(name) on I(ref) (default C(HEAD)) of the repository I(repo) with I(message).
  - Idempotent. An existing annotated tag on the same commit with the same message is left alone (C(changed=false)).
  - Refuses to move a tag, whatever points where - an existing tag on another commit, a lightweight tag, or the
    same commit with another message all fail with a message that names both sides and never changes anything.
  - With I(remote), pushes C(refs/tags/NAME) unless the remote already has that very tag object; refuses when the
    remote has a tag of that name that is a different object.
  - Runs git with C(GIT_TERMINAL_PROMPT=0) so it never waits for a password, and refuses a remote URL that embeds
    a password (C(https://user:secret@host/...)) - credentials belong to SSH keys or a git credential helper, never
    to a command line.
  - Runs on the controller (C(delegate_to=localhost)).
options:
  repo:
    description: Path of the git work tree (or bare repository) to tag.
    type: path
    required: true
  name:
    description: Tag name, for example C(v1.2.0-canonical-schema).
    type: str
    required: true
  message:
    description:
      - Annotation. Compared with an existing tag's after git's whitespace clean-up (trailing spaces and blank
        lines at either end do not count).
    type: str
    required: true
  ref:
    description: Commit-ish to tag.
    type: str
    default: HEAD
  remote:
    description: Remote name or URL to push the tag to. Empty means do not push.
    type: str
    default: ""
  tagger_name:
    description:
      - Tagger name. Empty means git's configured C(user.name), or C(dbrelease) when git has none.
    type: str
    default: ""
  tagger_email:
    description:
      - Tagger e-mail. Empty means git's configured C(user.email), or C(dbrelease@localhost) when git has none.
    type: str
    default: ""
  timeout:
    description: Seconds allowed for each remote operation (C(ls-remote), C(push)).
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    details: Inspects the repository and the remote and reports what it would create or push, without doing it.
  diff_mode:
    support: full
author: dbrelease
"""

EXAMPLES = r"""
- name: Tag the release
  git_tag:
    repo: /srv/app
    name: v1.2.0-canonical-schema
    message: "Canonical schema release: outbox + refresh_tokens"
    remote: origin
  delegate_to: localhost
"""

RETURN = r"""
tag:
  description: Tag name.
  returned: always
  type: str
commit:
  description: Commit the tag points to.
  returned: always
  type: str
tag_object:
  description: SHA of the annotated tag object (empty in check mode when the tag would be created).
  returned: always
  type: str
created:
  description: Whether the tag was created by this run (or would be, in check mode).
  returned: always
  type: bool
pushed:
  description: Whether the tag was pushed by this run (or would be, in check mode).
  returned: always
  type: bool
remote_state:
  description: C(absent), C(same) or C(not-checked) (no remote).
  returned: always
  type: str
record:
  description: What the release record keeps (phases.tag) - C(tag), C(commit), C(tag_object), C(created), C(pushed),
    C(remote_state), C(remote), C(repo).
  returned: success
  type: dict
"""

import os
import re
import subprocess
import urllib.parse

from ansible.module_utils.basic import AnsibleModule


class GitError(Exception):
    pass


def normalise_message(text: str) -> str:
    """git's `--cleanup=whitespace`: no trailing spaces, no blank lines at either end, runs of blank lines as one."""
    lines = [line.rstrip() for line in (text or "").replace("\r\n", "\n").split("\n")]
    out = []
    for line in lines:
        if line == "" and (not out or out[-1] == ""):
            continue
        out.append(line)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out)


def url_has_password(remote: str) -> bool:
    """True for URLs such as https://user:secret@host/repo.git (a password that would land in argv)."""
    if "://" not in remote:
        return False
    parsed = urllib.parse.urlsplit(remote)
    return parsed.password is not None


def redact_url(remote: str) -> str:
    if not url_has_password(remote):
        return remote
    parsed = urllib.parse.urlsplit(remote)
    netloc = "%s:********@%s" % (parsed.username or "", parsed.hostname or "")
    if parsed.port:
        netloc += ":%d" % parsed.port
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, parsed.query, parsed.fragment))


def parse_tag_object(text: str) -> dict:
    """`git cat-file tag X` output: headers (object, type, tag, tagger), a blank line, then the message."""
    headers, _, message = text.partition("\n\n")
    result = {"message": message}
    for line in headers.splitlines():
        key, _, value = line.partition(" ")
        result.setdefault(key, value)
    # A signed tag carries its signature after the message; it is not part of the message we compare.
    sig = result["message"].find("-----BEGIN PGP SIGNATURE-----")
    if sig >= 0:
        result["message"] = result["message"][:sig]
    return result


def parse_ls_remote(text: str, name: str) -> dict:
    """{'object': sha of refs/tags/NAME, 'peeled': sha of refs/tags/NAME^{}} from `git ls-remote` output."""
    found = {}
    for line in text.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == "refs/tags/%s" % name:
            found["object"] = sha
        elif ref == "refs/tags/%s^{}" % name:
            found["peeled"] = sha
    return found


class Git:
    def __init__(self, module, repo, timeout):
        self.module = module
        self.repo = repo
        self.timeout = timeout
        self.env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_ASKPASS="/bin/false",
                        SSH_ASKPASS="/bin/false")
        self.env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")

    def run(self, *args, check=True, env=None, timeout=None):
        cmd = ["git", "-C", self.repo, *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(self.env, **(env or {})),
                                  timeout=timeout or self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise GitError("git %s timed out after %ss" % (args[0], timeout or self.timeout)) from None
        if check and proc.returncode != 0:
            raise GitError("git %s failed (rc=%d): %s" % (" ".join(args[:2]), proc.returncode,
                                                          (proc.stderr or proc.stdout).strip()))
        return proc

    def out(self, *args, **kwargs):
        return self.run(*args, **kwargs).stdout.strip()

    def config(self, key):
        return self.run("config", "--get", key, check=False).stdout.strip()


def plan_and_apply(module, p):
    git = Git(module, p["repo"], p["timeout"])
    name, want_message = p["name"], normalise_message(p["message"])
    if not os.path.isdir(p["repo"]):
        raise GitError("release_git_repo %s does not exist" % p["repo"])
    if git.run("rev-parse", "--git-dir", check=False).returncode != 0:
        raise GitError("%s is not a git repository (set release_git_repo to the application's repository)"
                       % p["repo"])
    if git.run("check-ref-format", "refs/tags/%s" % name, check=False).returncode != 0:
        raise GitError("'%s' is not a valid git tag name" % name)
    commit = git.run("rev-parse", "--verify", "--quiet", "%s^{commit}" % p["ref"], check=False).stdout.strip()
    if not commit:
        raise GitError("ref '%s' is not a commit in %s" % (p["ref"], p["repo"]))

    result = dict(changed=False, tag=name, commit=commit, tag_object="", created=False, pushed=False,
                  remote_state="not-checked")
    before, after = "", "tag %s -> %s\n%s\n" % (name, commit, want_message)

    existing = git.run("rev-parse", "--verify", "--quiet", "refs/tags/%s" % name, check=False).stdout.strip()
    if existing:
        kind = git.out("cat-file", "-t", existing)
        if kind != "tag":
            raise GitError("tag %s already exists as a lightweight tag on %s; refusing to replace it with an "
                           "annotated tag (delete it by hand if it is wrong)" % (name, existing))
        info = parse_tag_object(git.out("cat-file", "tag", existing))
        have_commit = git.out("rev-parse", "%s^{commit}" % existing)
        if have_commit != commit:
            raise GitError("tag %s already points to %s, not to %s (%s); refusing to move a release tag: "
                           "use a new release_version or delete the tag by hand"
                           % (name, have_commit, p["ref"], commit))
        have_message = normalise_message(info["message"])
        if have_message != want_message:
            raise GitError("tag %s exists on %s with another message (%r, wanted %r); refusing to rewrite a "
                           "release tag" % (name, commit, have_message, want_message))
        result["tag_object"] = existing
        before = after
    else:
        result["created"] = True
        result["changed"] = True
        if not module.check_mode:
            tagger_name = p["tagger_name"] or git.config("user.name") or "dbrelease"
            tagger_email = p["tagger_email"] or git.config("user.email") or "dbrelease@localhost"
            env = {"GIT_COMMITTER_NAME": tagger_name, "GIT_COMMITTER_EMAIL": tagger_email}
            # The tagger identity comes from the environment so git never needs a global config here.
            git.run("tag", "--annotate", "--cleanup=whitespace", "--message", want_message, name, commit, env=env)
            result["tag_object"] = git.out("rev-parse", "refs/tags/%s" % name)

    if p["remote"]:
        remote = p["remote"]
        if url_has_password(remote):
            raise GitError("tag_git_remote %s embeds a password; use an SSH key or a git credential helper "
                           "instead (a password must never be on a command line)" % redact_url(remote))
        listing = parse_ls_remote(git.out("ls-remote", "--tags", remote, "refs/tags/%s" % name), name)
        if listing.get("object"):
            local_object = result["tag_object"]
            if local_object and listing["object"] == local_object:
                result["remote_state"] = "same"
            else:
                peeled = listing.get("peeled") or listing["object"]
                raise GitError("remote %s already has tag %s as object %s (commit %s), which is not this "
                               "release's tag object %s; refusing to overwrite it"
                               % (redact_url(remote), name, listing["object"], peeled, local_object or "(new)"))
        else:
            result["remote_state"] = "absent"
            result["pushed"] = True
            result["changed"] = True
            if not module.check_mode:
                git.run("push", "--porcelain", remote, "refs/tags/%s:refs/tags/%s" % (name, name))
        after += "pushed to %s\n" % redact_url(remote)
        if result["remote_state"] == "same":
            before += "pushed to %s\n" % redact_url(remote)

    if module._diff:
        result["diff"] = dict(before=before, after=after)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo=dict(type="path", required=True),
            name=dict(type="str", required=True),
            message=dict(type="str", required=True),
            ref=dict(type="str", default="HEAD"),
            remote=dict(type="str", default=""),
            tagger_name=dict(type="str", default=""),
            tagger_email=dict(type="str", default=""),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    if not normalise_message(module.params["message"]):
        module.fail_json(msg="git_tag: the tag message is empty; set tag_message")
    if not re.match(r"^[^\s]+$", module.params["name"] or ""):
        module.fail_json(msg="git_tag: tag name %r contains whitespace" % module.params["name"])
    try:
        result = plan_and_apply(module, module.params)
    except GitError as exc:
        module.fail_json(msg=str(exc), tag=module.params["name"])
    result["record"] = dict({key: result.get(key) for key in ("tag", "commit", "tag_object", "created", "pushed",
                                                               "remote_state")},
                            remote=module.params["remote"], repo=module.params["repo"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
