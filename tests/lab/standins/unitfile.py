"""systemd unit files and environment files as the systemctl stand-in reads them (systemctl.py, unitrun.py).

Read like systemd reads them, for the settings the stand-in runs: sections, comments (`#`, `;` at a line start),
backslash line continuation, ExecStart= (prefixes `-@+!:` dropped, an empty assignment resets, the last one wins),
Environment= (quoted words), EnvironmentFile= (`-` prefix: missing file is fine; empty resets), User=, Group=,
WorkingDirectory=, Type=, Restart=, RestartSec=, Description=.  Drop-ins `<unit>.d/*.conf` apply in file-name
order after the unit file.  Specifiers and the rest of systemd's settings are not read.
"""
import os
import re

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
            '"': '"', "'": "'", "s": " "}


def unit_files(unit):
    """(fragment path or None, [drop-in paths]) of a unit, as systemd finds them in UNIT_DIRS."""
    fragment = None
    for d in UNIT_DIRS:
        p = os.path.join(d, unit)
        if os.path.isfile(p):
            fragment = p
            break
    dropins = {}
    for d in reversed(UNIT_DIRS):   # a higher-priority dir masks a drop-in of the same name
        dd = os.path.join(d, unit + ".d")
        try:
            names = os.listdir(dd)
        except OSError:
            continue
        for name in names:
            if name.endswith(".conf") and os.path.isfile(os.path.join(dd, name)):
                dropins[name] = os.path.join(dd, name)
    return fragment, [dropins[k] for k in sorted(dropins)]


def logical_lines(text):
    """The lines systemd reads: comments dropped, backslash-continued lines joined with a space."""
    out, cur = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if cur is None and (not line or line[0] in "#;"):
            continue
        if cur is not None and line and line[0] in "#;":
            continue
        if line.endswith("\\"):
            cur = (cur + " " if cur is not None else "") + line[:-1].rstrip()
            continue
        out.append((cur + " " + line) if cur is not None else line)
        cur = None
    if cur is not None:
        out.append(cur)
    return out


def split_words(value):
    """Words of an ExecStart=/Environment= value: whitespace separated, "..." and '...' quoting, C escapes."""
    words, i, n = [], 0, len(value)
    while i < n:
        while i < n and value[i] in " \t":
            i += 1
        if i >= n:
            break
        word, quote = "", None
        while i < n:
            ch = value[i]
            if quote:
                if ch == quote:
                    quote = None
                elif ch == "\\" and i + 1 < n:
                    i += 1
                    word += _ESCAPES.get(value[i], value[i])
                else:
                    word += ch
            elif ch in "\"'":
                quote = ch
            elif ch in " \t":
                break
            elif ch == "\\" and i + 1 < n:
                i += 1
                word += _ESCAPES.get(value[i], value[i])
            else:
                word += ch
            i += 1
        words.append(word)
    return words


def parse_service(paths_texts):
    """The [Service] (and Description=) settings the stand-in uses, from [(path, text)] in load order."""
    svc = {"description": None, "exec_start": None, "environment": [], "environment_files": [], "user": None,
           "group": None, "working_directory": None, "type": "simple", "restart": "no", "restart_sec": 0.1}
    for _path, text in paths_texts:
        section = None
        for line in logical_lines(text):
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if "=" not in line:
                continue
            key, value = line.split("=", 1)
            key, value = key.strip(), value.strip()
            if section == "Unit" and key == "Description":
                svc["description"] = value
            if section != "Service":
                continue
            if key == "ExecStart":
                if not value:
                    svc["exec_start"] = None
                else:
                    words = split_words(value)
                    if words and words[0].lstrip("-@+!:"):
                        words[0] = words[0].lstrip("-@+!:")
                    elif words:
                        words.pop(0)
                    svc["exec_start"] = words
            elif key == "Environment":
                if not value:
                    svc["environment"] = []
                else:
                    svc["environment"] += [w for w in split_words(value) if "=" in w]
            elif key == "EnvironmentFile":
                if not value:
                    svc["environment_files"] = []
                else:
                    svc["environment_files"].append(value)
            elif key == "User":
                svc["user"] = value or None
            elif key == "Group":
                svc["group"] = value or None
            elif key == "WorkingDirectory":
                svc["working_directory"] = value or None
            elif key == "Type":
                svc["type"] = value or "simple"
            elif key == "Restart":
                svc["restart"] = value or "no"
            elif key == "RestartSec":
                svc["restart_sec"] = _seconds(value)
    return svc


def _seconds(value):
    m = re.match(r"^\s*([0-9.]+)\s*(ms|s|sec|min|m)?\s*$", value or "")
    if not m:
        return 0.1
    num = float(m.group(1))
    return num / 1000 if m.group(2) == "ms" else num * 60 if m.group(2) in ("min", "m") else num


def read_env_file(path):
    """KEY=VALUE pairs of an EnvironmentFile= (systemd's syntax: comments, quotes, escapes, continuation)."""
    with open(path) as f:
        text = f.read()
    env = []
    for line in logical_lines(text):
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = "".join(split_words(value)) if value[0] == '"' else value[1:-1]
        env.append((key, value))
    return env


def expand_exec(words, env):
    """ExecStart= variable expansion: ${VAR} within a word, a lone $VAR splits into words."""
    out = []
    for w in words:
        m = re.match(r"^\$([A-Za-z_][A-Za-z0-9_]*)$", w)
        if m:
            out += env.get(m.group(1), "").split()
            continue
        out.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda mm: env.get(mm.group(1), ""), w))
    return out
