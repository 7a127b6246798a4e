"""Write docs/variables.md from every role's meta/argument_specs.yml (run by `make docs`).

Usage: python docs/gen_variables.py [--check]   (--check: exit 1 if docs/variables.md is out of date)
"""

import os
import re
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES = os.path.join(REPO, "roles")
OUTPUT = os.path.join(REPO, "docs", "variables.md")


def plain(text):
    """Ansible doc markup (C(x), V(x), O(x), E(x), M(x), I(x)) to Markdown."""
    text = re.sub(r"[CVOEM]\(([^)]*)\)", r"`\1`", str(text))
    text = re.sub(r"I\(([^)]*)\)", r"*\1*", text)
    return text.replace("|", "\\|").replace("\n", " ")


def cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "`%s`" % str(value).lower()
    if value == "":
        return '`""`'
    return "`%s`" % str(value).replace("|", "\\|")


def role_section(role, specs):
    lines = []
    for entry, spec in sorted(specs.get("argument_specs", {}).items()):
        title = "kubeops.etcd.%s" % role + ("" if entry == "main" else " (entry point `%s`)" % entry)
        lines += ["## %s" % title, "", plain(spec.get("short_description", "")), ""]
        for paragraph in spec.get("description", []) or []:
            lines += [plain(paragraph), ""]
        lines += ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
        for name, option in sorted(spec.get("options", {}).items()):
            description = option.get("description", "")
            if isinstance(description, list):
                description = " ".join(description)
            kind = option.get("type", "str")
            if option.get("elements"):
                kind += " of " + option["elements"]
            if option.get("choices"):
                description += " Choices: %s." % ", ".join(cell(c) for c in option["choices"])
            default = "*required*" if option.get("required") else cell(option.get("default"))
            lines.append("| `%s` | %s | %s | %s |" % (name, kind, default, plain(description)))
        lines.append("")
    return lines


def render():
    lines = ["# Role variables", "",
             "Generated from `roles/*/meta/argument_specs.yml` by `docs/gen_variables.py` (`make docs`);"
             " do not edit by hand.", ""]
    for role in sorted(os.listdir(ROLES)):
        path = os.path.join(ROLES, role, "meta", "argument_specs.yml")
        if os.path.isfile(path):
            with open(path) as handle:
                lines += role_section(role, yaml.safe_load(handle))
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        current = open(OUTPUT).read() if os.path.exists(OUTPUT) else ""
        if current != text:
            sys.stderr.write("%s is out of date: run make docs\n" % OUTPUT)
            return 1
        return 0
    with open(OUTPUT, "w") as handle:
        handle.write(text)
    print(OUTPUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
