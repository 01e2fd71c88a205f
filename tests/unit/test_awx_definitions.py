"""The AWX definitions (awx/*.yml) agree with the playbooks they launch.

Each job template's playbook exists, each `job_tags` value is a tag the playbooks really carry, each survey
variable and each variable the credential type injects is one the playbooks or roles really read, the workflow
cannot reach production without an approval, and no password travels as an extra var. Renaming a tag or a
variable in the playbooks without updating awx/ fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import jinja2.meta
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AWX = ROOT / "awx"
SPECIAL_TAGS = {"always", "never", "all", "tagged", "untagged"}
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
# Keys whose values Ansible evaluates as bare Jinja expressions (no braces).
BARE_EXPRESSION_KEYS = {"when", "that", "failed_when", "changed_when", "until"}


class _Loader(yaml.SafeLoader):
    """YAML as Ansible reads it: `!unsafe` and `!vault` are plain strings here."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
_Loader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))


def load(path: Path):
    return yaml.load(path.read_text(), Loader=_Loader)


def walk(node, key=None):
    """Yield (key, value) for every scalar string in a YAML tree, with the mapping key it sits under."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)
    elif isinstance(node, str):
        yield key, node


# -- What the playbooks and roles really contain ---------------------------------------------------------------
def playbook_files():
    files = [p for p in (ROOT / "release.yml", ROOT / "fleet.yml", ROOT / "rollback.yml") if p.exists()]
    return files + sorted((ROOT / "playbooks").glob("*.yml"))


def role_yaml_files():
    return sorted(p for sub in ("tasks", "defaults", "vars", "handlers") for p in ROOT.glob("roles/*/%s/*.yml" % sub))


class _AnyPlugin(dict):
    """Filters and tests by any name: only the variables matter here, not Ansible's plugins."""

    def __contains__(self, name):
        return True

    def __missing__(self, name):
        return _any_plugin

    def get(self, name, default=None):
        return self[name]


def _any_plugin(*args, **kwargs):
    return None


_ENV = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
_ENV.filters = _AnyPlugin(_ENV.filters)
_ENV.tests = _AnyPlugin(_ENV.tests)


def jinja_names(text: str) -> set[str]:
    try:
        return set(jinja2.meta.find_undeclared_variables(_ENV.parse(text)))
    except jinja2.TemplateSyntaxError as exc:  # a test must not hide a template it cannot read
        raise AssertionError("cannot parse template %r: %s" % (text[:80], exc)) from None


def variables_read() -> set[str]:
    """Every variable name that a playbook, role file or role template refers to in Jinja."""
    names: set[str] = set()
    for path in playbook_files() + role_yaml_files():
        for key, value in walk(load(path)):
            if key in BARE_EXPRESSION_KEYS and "{{" not in value:
                names |= jinja_names("{{ %s }}" % value)
            elif "{{" in value or "{%" in value:
                names |= jinja_names(value)
    for path in ROOT.glob("roles/*/templates/*.j2"):
        names |= jinja_names(path.read_text())
    return names


def role_inputs() -> set[str]:
    """Inputs declared in the roles' meta/argument_specs.yml."""
    names: set[str] = set()
    for path in ROOT.glob("roles/*/meta/argument_specs.yml"):
        for spec in (load(path).get("argument_specs") or {}).values():
            names |= set((spec or {}).get("options") or {})
    return names


def _collect_tags(node, tags: set[str]):
    if isinstance(node, dict):
        value = node.get("tags")
        if isinstance(value, str):
            tags.update(t.strip() for t in value.split(","))
        elif isinstance(value, list):
            tags.update(str(t) for t in value)
        for v in node.values():
            _collect_tags(v, tags)
    elif isinstance(node, list):
        for item in node:
            _collect_tags(item, tags)


def playbook_tags(playbook: Path, seen=None) -> set[str]:
    """Tags carried by a playbook's plays (following import_playbook) and by the tasks of the roles they use."""
    seen = seen if seen is not None else set()
    if playbook in seen:
        return set()
    seen.add(playbook)
    tags: set[str] = set()
    roles: set[str] = set()
    for play in load(playbook) or []:
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if imported:
            tags |= playbook_tags((playbook.parent / imported).resolve(), seen)
            continue
        _collect_tags(play, tags)
        for key, value in walk(play):
            if key in ("role", "name") and (ROOT / "roles" / str(value)).is_dir():
                roles.add(str(value))
    for role in roles:
        for path in (ROOT / "roles" / role / "tasks").glob("*.yml"):
            _collect_tags(load(path), tags)
    return tags


# -- The AWX definitions ----------------------------------------------------------------------------------------
JOB_TEMPLATES = load(AWX / "job_templates.yml")["dbrelease_awx_job_templates"]
WORKFLOWS = load(AWX / "workflows.yml")["dbrelease_awx_workflows"]
CREDENTIAL_TYPES = load(AWX / "credential_types.yml")["dbrelease_awx_credential_types"]


def surveys():
    for owner in JOB_TEMPLATES + WORKFLOWS:
        if owner.get("survey_enabled"):
            yield owner["name"], owner["survey_spec"]


@pytest.fixture(scope="module")
def read_names():
    return variables_read() | role_inputs()


@pytest.mark.parametrize("template", JOB_TEMPLATES, ids=[t["name"] for t in JOB_TEMPLATES])
def test_job_template_playbook_exists(template):
    assert (ROOT / template["playbook"]).is_file(), "%s launches %s, which does not exist" % (
        template["name"], template["playbook"])


@pytest.mark.parametrize("template", [t for t in JOB_TEMPLATES if t.get("job_tags")],
                         ids=[t["name"] for t in JOB_TEMPLATES if t.get("job_tags")])
def test_job_template_tags_are_real_tags_of_its_playbook(template):
    real = playbook_tags(ROOT / template["playbook"]) - SPECIAL_TAGS
    for tag in template["job_tags"].split(","):
        assert tag.strip() in real, "%s runs --tags %s, but %s only has the tags %s" % (
            template["name"], tag, template["playbook"], sorted(real))


def test_every_phase_tag_of_release_has_a_job_template():
    phase_tags = set()
    for play in load(ROOT / "release.yml"):
        _collect_tags(load(ROOT / play["ansible.builtin.import_playbook"]), phase_tags)
    templated = {t["job_tags"] for t in JOB_TEMPLATES if t.get("job_tags")}
    assert phase_tags - SPECIAL_TAGS <= templated, "phases without a job template: %s" % sorted(
        phase_tags - SPECIAL_TAGS - templated)


@pytest.mark.parametrize("name,survey", list(surveys()), ids=[n for n, _ in surveys()])
def test_survey_variables_are_read_by_the_playbooks(name, survey, read_names):
    for question in survey["spec"]:
        assert question["variable"] in read_names, (
            "survey of %s asks for %s, which no playbook or role reads" % (name, question["variable"]))


@pytest.mark.parametrize("name,survey", list(surveys()), ids=[n for n, _ in surveys()])
def test_survey_questions_are_well_formed(name, survey):
    variables = [q["variable"] for q in survey["spec"]]
    assert len(variables) == len(set(variables)), "%s asks twice for one variable" % name
    for q in survey["spec"]:
        assert q["type"] in SURVEY_TYPES, "%s: %s has type %s" % (name, q["variable"], q["type"])
        assert q["type"] != "password", "%s: passwords come from credentials, not surveys" % name
        assert q.get("question_name"), "%s: %s has no question" % (name, q["variable"])
        if q["type"] == "multiplechoice":
            assert str(q["default"]) in [str(c) for c in q["choices"]]
        if q["type"] == "integer" and q.get("default") not in (None, ""):
            assert q["min"] <= int(q["default"]) <= q["max"]
        if q["type"] == "text" and q.get("default"):
            assert q.get("min", 0) <= len(q["default"]) <= q.get("max", 1024)


def test_surveys_ask_for_the_release_version():
    for name, survey in surveys():
        version = [q for q in survey["spec"] if q["variable"] == "release_version"]
        assert version and version[0]["required"], "%s does not ask for the release version" % name


def test_dry_run_is_offered_as_the_check_job_type():
    for template in JOB_TEMPLATES:
        if template["playbook"] in ("release.yml", "fleet.yml"):
            assert template.get("ask_job_type_on_launch"), "%s cannot be launched as a dry run" % template["name"]


def test_workflow_nodes_launch_defined_templates():
    names = {t["name"] for t in JOB_TEMPLATES}
    for workflow in WORKFLOWS:
        identifiers = {n["identifier"] for n in workflow["nodes"]}
        for node in workflow["nodes"]:
            assert ("unified_job_template" in node) != ("approval_node" in node), node["identifier"]
            if "unified_job_template" in node:
                assert node["unified_job_template"] in names, node["identifier"]
            for target in node.get("success_nodes") or []:
                assert target in identifiers, "%s points to unknown node %s" % (node["identifier"], target)
            if node.get("job_type"):
                assert node["job_type"] in ("run", "check")


def _paths(nodes, start, path=()):
    path = path + (start,)
    children = nodes[start].get("success_nodes") or []
    if not children:
        yield path
    for child in children:
        yield from _paths(nodes, child, path)


def test_production_changes_only_after_staging_and_an_approval():
    for workflow in WORKFLOWS:
        nodes = {n["identifier"]: n for n in workflow["nodes"]}
        targets = {t for n in nodes.values() for t in n.get("success_nodes") or []}
        roots = [i for i in nodes if i not in targets]
        assert roots, "%s has no first node" % workflow["name"]
        changes_production = {i for i, n in nodes.items()
                              if n.get("environment") == "production" and n.get("job_type", "run") == "run"}
        assert changes_production, "%s never releases production" % workflow["name"]
        for root in roots:
            for path in _paths(nodes, root):
                for i, identifier in enumerate(path):
                    if identifier in changes_production:
                        before = [nodes[p] for p in path[:i]]
                        assert any("approval_node" in n for n in before), "%s: %s runs without approval" % (
                            workflow["name"], identifier)
                        assert any(n.get("environment") == "staging" and n.get("job_type", "run") == "run"
                                   for n in before), "%s: %s runs before staging" % (workflow["name"], identifier)


@pytest.mark.parametrize("ctype", CREDENTIAL_TYPES, ids=[c["name"] for c in CREDENTIAL_TYPES])
def test_no_secret_field_travels_as_an_extra_var_or_environment_variable(ctype):
    secrets = {f["id"] for f in ctype["inputs"]["fields"] if f.get("secret")}
    assert secrets, "the credential type has no secret field"
    for section in ("extra_vars", "env"):
        for name, template in (ctype["injectors"].get(section) or {}).items():
            used = jinja_names(template)
            assert not used & secrets, "%s %s injects %s" % (section, name, sorted(used & secrets))
    file_templates = " ".join((ctype["injectors"].get("file") or {}).values())
    assert secrets <= jinja_names(file_templates), "the secret fields must reach the option file"


@pytest.mark.parametrize("ctype", CREDENTIAL_TYPES, ids=[c["name"] for c in CREDENTIAL_TYPES])
def test_credential_injected_variables_are_read_by_the_playbooks(ctype, read_names):
    for name in ctype["injectors"].get("extra_vars") or {}:
        assert name in read_names, "%s injects %s, which no playbook or role reads" % (ctype["name"], name)


@pytest.mark.parametrize("ctype", CREDENTIAL_TYPES, ids=[c["name"] for c in CREDENTIAL_TYPES])
def test_credential_file_references_point_at_injected_files(ctype):
    files = {key.split(".", 1)[1] for key in (ctype["injectors"].get("file") or {})}
    for template in (ctype["injectors"].get("extra_vars") or {}).values():
        for ref in re.findall(r"tower\.filename\.(\w+)", template):
            assert ref in files, "%s refers to an undefined file %s" % (ctype["name"], ref)


def test_configure_playbook_uses_only_awx_modules_and_builtins():
    plays = load(AWX / "configure.yml")
    modules = set()
    for play in plays:
        for task in play["tasks"]:
            modules |= {k for k in task if "." in k}
    assert modules, "configure.yml has no tasks"
    assert all(m.startswith(("awx.awx.", "ansible.builtin.")) for m in modules), sorted(modules)


def test_the_checks_catch_a_renamed_tag_and_variable():
    """The checks above are not vacuous: a tag or variable that nothing carries is reported missing."""
    assert "backup" in playbook_tags(ROOT / "release.yml")
    assert "backup_renamed" not in playbook_tags(ROOT / "release.yml")
    names = variables_read() | role_inputs()
    assert "release_version" in names
    assert "release_versoin" not in names


# -- Notifications (notification_templates.yml) and the post-release watch ---------------------------------------
NOTIFICATION_TEMPLATES = load(AWX / "notification_templates.yml")["dbrelease_awx_notification_templates"]
# The names AWX puts in a notification message's context (its JobNotificationMixin.context and the approval's), and
# the shape of `job` as AWX documents it (what the sandbox below renders against).
AWX_CONTEXT_NAMES = {"job", "job_friendly_name", "job_metadata", "url", "approval_status", "approval_node_name",
                     "workflow_url"}


def awx_context(artifacts):
    job = {"id": 42, "name": "dbrelease release", "status": "failed", "elapsed": 93.4, "limit": "",
           "job_explanation": "Previous Task Failed", "failed": True, "started": "2026-12-01T10:00:00Z",
           "finished": "2026-12-01T10:01:33Z", "playbook": "release.yml", "job_type": "run", "job_tags": "",
           "summary_fields": {"inventory": {"name": "dbrelease production"},
                              "created_by": {"username": "ana"}, "job_template": {"name": "dbrelease release"}},
           "artifacts": artifacts}
    return {"job": job, "job_friendly_name": "Job", "job_metadata": "{}", "url": "https://awx.example/#/jobs/42",
            "approval_status": "running", "approval_node_name": "Approve the production release",
            "workflow_url": "https://awx.example/#/workflows/7"}


def messages():
    for template in NOTIFICATION_TEMPLATES:
        for event, message in template["messages"].items():
            items = message.items() if event == "workflow_approval" else [(event, message)]
            for name, fields in items:
                for field, source in fields.items():
                    yield template, name, field, source


def summary_artifact():
    """The job's artifacts as the release publishes them (set_stats of release_summary), for two databases."""
    import release_summary

    ok = {"version": "v1", "database": "shop", "phases": {"verify": {"status": "ok", "verdict": "ok"}}}
    failed = {"version": "v1", "database": "crm", "phases": {"schema": {"status": "failed"}}}
    return {"dbrelease": {"db1": release_summary.release_summary(ok, "v1", "/a/db1/v1"),
                          "db2": release_summary.release_summary(failed, "v1", "/a/db2/v1")}}


@pytest.mark.parametrize("template,name,field,source", list(messages()),
                         ids=["%s-%s-%s" % (t["name"], n, f) for t, n, f, _ in messages()])
def test_notification_messages_render_in_awx_sandbox_with_only_awx_context(template, name, field, source):
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    assert jinja_names(source) <= AWX_CONTEXT_NAMES, jinja_names(source) - AWX_CONTEXT_NAMES
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for artifacts in (summary_artifact(), {}):  # a job that failed before publishing anything
        rendered = env.from_string(source).render(**awx_context(artifacts))
        if template["notification_type"] == "webhook":
            body = __import__("json").loads(rendered)  # AWX sends the body as JSON
            assert isinstance(body["text"], str) and isinstance(body["title"], str) and body["text"]
        assert rendered.strip()
    if name == "error" and field == "body":
        assert "db2: failed at schema" in env.from_string(source).render(**awx_context(summary_artifact()))


def test_the_artifacts_the_messages_read_are_those_the_release_publishes():
    published = set(summary_artifact()["dbrelease"]["db1"])
    for _template, _name, _field, source in messages():
        used = set(re.findall(r'r\.get\("(\w+)"', source))
        assert used <= published, used - published


def test_notification_secrets_come_from_configure_inputs_not_from_the_file():
    for template in NOTIFICATION_TEMPLATES:
        config = template["notification_configuration"]
        for key in ("url", "password", "token", "username"):
            if key in config:
                assert "{{" in config[key] and "dbrelease_awx_notify_" in config[key], (template["name"], key)
        assert "{{" in str(template["enabled"]), "%s is created only when its settings are given" % template["name"]


def test_every_template_and_workflow_gets_the_notifications_and_the_approval_too():
    configure = load(AWX / "configure.yml")[0]
    assert "notification_templates.yml" in configure["vars_files"]
    tasks = {task["name"].split(" {{")[0]: task for task in configure["tasks"]}
    job = tasks["Create the job template"]["awx.awx.job_template"]
    workflow = tasks["Create the workflow"]["awx.awx.workflow_job_template"]
    for module in (job, workflow):
        for when in ("started", "success", "error"):
            assert module["notification_templates_" + when] == "{{ __dbrelease_awx_notifications }}"
    assert workflow["notification_templates_approvals"] == "{{ __dbrelease_awx_notifications }}"
    assert tasks["Create the notification template"]["no_log"] is True
    approvals = [t for t in NOTIFICATION_TEMPLATES if "workflow_approval" in t["messages"]]
    assert approvals and all({"running", "approved", "denied", "timed_out"} <= set(t["messages"]["workflow_approval"])
                             for t in approvals)


def test_the_production_plan_is_notified_as_waiting_for_approval():
    for workflow in WORKFLOWS:
        nodes = {n["identifier"]: n for n in workflow["nodes"]}
        for node in nodes.values():
            if any("approval_node" in nodes[t] for t in node.get("success_nodes") or []):
                assert node["extra_data"]["release_approval_pending"] == "true", node["identifier"]
                template = next(t for t in JOB_TEMPLATES if t["name"] == node["unified_job_template"])
                asked = {q["variable"] for q in template["survey_spec"]["spec"]}
                assert set(node["extra_data"]) <= asked, "AWX accepts node extra_data only for survey questions"


def test_the_watch_is_scheduled_after_the_production_release_and_ends_by_itself():
    names = {t["name"]: t for t in JOB_TEMPLATES}
    assert names["dbrelease post-release watch"]["playbook"] == "post_release_watch.yml"
    assert names["dbrelease schedule the post-release watch"]["playbook"] == "awx/schedule_post_release_watch.yml"
    for workflow in WORKFLOWS:
        nodes = {n["identifier"]: n for n in workflow["nodes"]}
        schedule = [i for i, n in nodes.items()
                    if n.get("unified_job_template") == "dbrelease schedule the post-release watch"]
        assert schedule, workflow["name"]
        before = [i for i, n in nodes.items() if schedule[0] in (n.get("success_nodes") or [])]
        assert [nodes[i]["unified_job_template"] for i in before] == ["dbrelease fleet release"]
    play = load(AWX / "schedule_post_release_watch.yml")[0]
    schedule_task = next(t for t in play["tasks"] if "awx.awx.schedule" in t)["awx.awx.schedule"]
    assert schedule_task["unified_job_template"] == "{{ dbrelease_awx_post_release_watch_template }}"
    assert play["vars"]["dbrelease_awx_post_release_watch_template"] == "dbrelease post-release watch"
    facts = next(t for t in play["tasks"] if "ansible.builtin.set_fact" in t)["ansible.builtin.set_fact"]
    rule = facts["__watch_rrule"]
    assert "watch_rrule(release_watch_hours" in rule  # UNTIL: AWX ends the schedule by itself
    assert set(schedule_task["extra_data"]) == {"release_version", "release_watch_hours"}
    # One length of the watch: the schedule's default, the survey's and the verify role's agree.
    role_default = load(ROOT / "roles/verify/defaults/main.yml")["verify_post_release_hours"]
    assert "default(72)" in role_default and play["vars"]["release_watch_hours"] == 72
    hours = [q for q in names["dbrelease post-release watch"]["survey_spec"]["spec"]
             if q["variable"] == "release_watch_hours"]
    assert hours[0]["default"] == 72


def test_the_watch_schedule_template_reaches_the_awx_api_and_the_watch_the_production_databases():
    names = {t["name"]: t for t in JOB_TEMPLATES}
    assert names["dbrelease schedule the post-release watch"]["controller_credential"] is True
    watch_templates = ("dbrelease post-release watch", "dbrelease schedule the post-release watch")
    assert {names[n].get("environment") for n in watch_templates} == {"production"}
    for workflow in WORKFLOWS:
        for node in workflow["nodes"]:
            if node.get("unified_job_template") == "dbrelease schedule the post-release watch":
                assert node["controller_credential"] is True
    configure = load(AWX / "configure.yml")[0]
    assert configure["vars"]["dbrelease_awx_controller_credential"] == ""
    job = next(t for t in configure["tasks"] if t["name"].startswith("Create the job template"))["awx.awx.job_template"]
    assert "controller_credential" in job["credentials"] and "item.environment" in job["inventory"]
