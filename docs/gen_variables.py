"""Write the role variable tables from every role's meta/argument_specs.yml (run by `make docs`).

Writes docs/variables.md and the same tables into README.md between the BEGIN/END GENERATED
VARIABLES markers. Usage: python docs/gen_variables.py [--check]   (--check: exit 1 if either
file is out of date; `make lint` runs it).
"""

import os
import re
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES = os.path.join(REPO, "roles")
OUTPUT = os.path.join(REPO, "docs", "variables.md")
README = os.path.join(REPO, "README.md")
BEGIN = "<!-- BEGIN GENERATED VARIABLES -->"
END = "<!-- END GENERATED VARIABLES -->"


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


def role_tables():
    lines = []
    for role in sorted(os.listdir(ROLES)):
        path = os.path.join(ROLES, role, "meta", "argument_specs.yml")
        if os.path.isfile(path):
            with open(path) as handle:
                lines += role_section(role, yaml.safe_load(handle))
    return lines


def render():
    lines = ["# Role variables", "",
             "Generated from `roles/*/meta/argument_specs.yml` by `docs/gen_variables.py` (`make docs`);"
             " do not edit by hand.", ""]
    return "\n".join(lines + role_tables()).rstrip("\n") + "\n"


def render_readme(current):
    """README.md with the tables (one heading level down) between the markers."""
    if BEGIN not in current or END not in current:
        raise SystemExit("%s lacks the %s / %s markers" % (README, BEGIN, END))
    tables = ["#" + line if line.startswith("## ") else line for line in role_tables()]
    head, rest = current.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return head + BEGIN + "\n" + "\n".join(tables).rstrip("\n") + "\n" + END + tail


def main(argv):
    with open(README) as handle:
        readme = handle.read()
    wanted = {OUTPUT: render(), README: render_readme(readme)}
    stale = []
    for path, text in sorted(wanted.items()):
        current = open(path).read() if os.path.exists(path) else ""
        if current != text:
            stale.append(path)
            if "--check" not in argv:
                with open(path, "w") as handle:
                    handle.write(text)
                print(path)
    if "--check" in argv and stale:
        sys.stderr.write("out of date, run `make docs`: %s\n" % ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
