# -*- coding: utf-8 -*-
# Copyright (c) kubeops.etcd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The restore's journal and what an interrupted run left: pure functions, no I/O.

Each node keeps ``<run dir>/journal.json`` (0600): written once every member is prepared, before the first
pod stops, with the whole plan; its ``status`` becomes ``done``, ``rolled_back`` or ``aborted`` when the run
ends. A journal still ``running`` is an unfinished run. The step it reached is not written step by step:
every step of the outage is one atomic rename on the node (a manifest into the holding dir, the prepared
``etcd.yaml`` into the manifests dir, a held manifest back), so the files themselves say how far it got, and
reading them costs the outage no extra round trip. ``node_step`` reads them; ``decide`` chooses what a new
run may do: nothing in the way, resume, abort, or refuse with both commands.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

JOURNAL_NAME = 'journal.json'
JOURNAL_FORMAT = 1
CONTROL_PLANE_PODS = ('kube-apiserver', 'kube-controller-manager', 'kube-scheduler')

# What each step means, for the operator.
STEP_TEXT = {
    'prepared': 'prepared, nothing stopped (etcd.yaml still points at the previous data dir)',
    'stopping': 'stopped half way: the API server, controller-manager and scheduler held, etcd still on the previous data',
    'stopped': 'control plane stopped, etcd.yaml held aside, the prepared etcd.yaml not yet swapped in',
    'etcd_started': 'etcd started on the restored data dir; the API server, controller-manager and scheduler held',
    'started': 'running on the restored data dir (the run was not verified or reported)',
    'rolling_back': 'rolled back half way: etcd.yaml held aside again after the swap',
    'rolled_back': 'back on the previous data dir (the rollback did not finish: some pods may still be held)',
    'unknown': 'in a state this run cannot tell (etcd.yaml neither in the manifests dir nor held)',
}
# Steps a run can be finished from, when every node reached the same one.
RESUMABLE = ('stopped', 'etcd_started', 'started')


def journal_document(plan, host, status, written):
    """The journal of one node: the whole plan (so that any node's journal can finish or undo the run)."""
    member = [m for m in plan['members'] if m['host'] == host]
    if not member:
        raise ValueError('host %s is not a member of the plan' % host)
    return {'format': JOURNAL_FORMAT, 'run': plan['timestamp'], 'host': host, 'status': status, 'written': written,
            'member': member[0], 'plan': plan}


def node_step(member, facts):
    """The step a node reached, from its files.

    member: the node's member plan (journal['member']). facts: {held: [names held in the holding dir],
    manifest_data_dir: the data dir hostPath of the etcd.yaml in the manifests dir or None when there is none,
    prepared_exists: the prepared etcd.yaml still in the run dir, original_exists}.
    """
    held = set(facts.get('held') or [])
    data_dir = facts.get('manifest_data_dir')
    prepared = bool(facts.get('prepared_exists'))
    control_plane_held = bool(held & set(CONTROL_PLANE_PODS))
    if 'etcd' in held and data_dir is None:
        return 'stopped' if prepared else 'rolling_back'
    if data_dir is None:
        return 'unknown'
    if data_dir == member.get('new_data_dir'):
        return 'etcd_started' if control_plane_held else 'started'
    if prepared and not held:
        return 'prepared'
    if not prepared:
        return 'rolled_back'
    # the previous etcd.yaml runs, yet pods are held and the prepared one was not swapped in: stopped half way
    return 'stopping' if control_plane_held else 'prepared'


def _commands():
    return ('finish it: ansible-playbook playbooks/restore.yml -i <inventory> -e etcd_restore_resume=true '
            '(only when every node reached the same step); undo it: ansible-playbook playbooks/restore_abort.yml -i '
            '<inventory> (or restore.yml -e etcd_restore_rollback=true): every node back on its previous data dir, '
            'its pods started, quorum checked')


def decide(runs, hosts, resume=False, rollback=False, unanswered=None):
    """What a new run may do about unfinished runs.

    runs: {host: [{'run', 'step', 'journal'}]} for journals still 'running'. unanswered: {host: the connection
    error} for the control planes whose journals could not be read. Returns {'action': 'none' | 'warn' | 'refuse' |
    'resume' | 'abort' | 'close', 'run', 'plan', 'steps' {host: step}, 'lines', 'msg'}. 'close': an abort of a run
    that stopped nothing, whose journals are only closed.
    """
    found = {}
    for host in hosts:
        for entry in runs.get(host) or []:
            found.setdefault(entry['run'], {})[host] = entry
    if resume and rollback:
        return _result('refuse', msg='etcd_restore_resume and etcd_restore_rollback were both given: choose one. '
                                     'Nothing was changed.')
    if unanswered and (found or resume or rollback):
        return _unanswered(found, hosts, unanswered)
    if unanswered:
        silent = [host for host in hosts if host in unanswered]
        return _result('refuse', lines=_unanswered_lines(found, hosts, unanswered), msg=(
            '%s did not answer (%s). A restore changes every control plane of the play together, so it does not '
            'start without %s. Bring %s back, or, if %s lost for good, restore onto the others and declare %s: '
            '-e etcd_restore_lost_hosts=%s (docs/restore.md, "Restoring onto the survivors"). Nothing was changed.'
            % (', '.join(silent), _gist(unanswered[silent[0]]), 'it' if len(silent) == 1 else 'them',
               'it' if len(silent) == 1 else 'them', 'it is' if len(silent) == 1 else 'they are',
               'it' if len(silent) == 1 else 'them', ','.join(silent))))
    if not found:
        if resume or rollback:
            return _result('refuse', msg='%s was asked for, but no control plane of this play has an unfinished '
                                         'restore run (no journal.json with status "running" in the runs dir). '
                                         'Nothing was changed.'
                                         % ('etcd_restore_resume' if resume else 'etcd_restore_rollback'))
        return _result('none')
    if len(found) > 1:
        lines = ['run %s on %s' % (run, ', '.join(sorted(entries))) for run, entries in sorted(found.items())]
        return _result('refuse', lines=lines, msg='More than one unfinished restore run was found (%s). Undo them '
                                                  'one at a time by hand (docs/restore.md, "Interrupted runs"). '
                                                  'Nothing was changed.' % '; '.join(lines))
    run, entries = list(found.items())[0]
    steps = dict((host, entries[host]['step']) for host in entries)
    plan = entries[sorted(entries)[0]]['journal']['plan']
    lines = ['unfinished restore run %s (snapshot %s):' % (run, (plan.get('snapshot') or {}).get('path', '?'))]
    for host in hosts:
        if host in steps:
            lines.append('%s: %s' % (host, STEP_TEXT.get(steps[host], steps[host])))
        else:
            lines.append('%s: no journal of this run (the node was not part of it, or its files are gone)' % host)
    planned = [m['host'] for m in plan['members']]
    missing = [h for h in planned if h not in steps]
    # Interrupted before the stop: every pod in place, every etcd.yaml on its previous data dir. Nothing is put
    # back; the journals are closed (a new run: abandoned, once its own members are prepared; an abort: aborted),
    # so that neither a later interrupted run nor prune.yml trips over them.
    nothing_stopped = all(step == 'prepared' for step in steps.values())
    if nothing_stopped and not (resume or rollback):
        return _result('warn', run=run, plan=plan, steps=steps, lines=lines,
                       msg='An earlier restore run (%s) was interrupted before anything was stopped; nothing it left '
                           'is in use. This run closes its journal (abandoned) once its own members are prepared; '
                           'playbooks/prune.yml lists what it left.' % run)
    if nothing_stopped and rollback:
        return _result('close', run=run, plan=plan, steps=steps, lines=lines,
                       msg='The unfinished restore run %s was interrupted before anything was stopped: every pod is '
                           'in place and every etcd.yaml points at its previous data dir, so nothing is stopped or put '
                           'back. Its journals are closed (aborted); playbooks/prune.yml lists what it prepared.' % run)
    if rollback:
        return _result('abort', run=run, plan=plan, steps=steps, lines=lines)
    if resume:
        distinct = set(steps.values())
        if missing or len(distinct) != 1 or list(distinct)[0] not in RESUMABLE:
            return _result('refuse', run=run, plan=plan, steps=steps, lines=lines, msg=(
                'The unfinished restore run %s cannot be resumed: %s. Undo it with playbooks/restore_abort.yml (or '
                'restore.yml -e etcd_restore_rollback=true). Nothing was changed.\n%s'
                % (run, 'the nodes did not all reach the same step' if len(distinct) != 1 or missing
                   else 'it stopped at a step it cannot be finished from (%s)' % list(distinct)[0], '\n'.join(lines))))
        return _result('resume', run=run, plan=plan, steps=steps, lines=lines)
    first = [h for h in hosts if h in steps and steps[h] != 'prepared'] or sorted(steps)
    return _result('refuse', run=run, plan=plan, steps=steps, lines=lines, msg=(
        'An earlier restore run (%s) did not finish: %s is %s. Nothing was changed by this run. Two ways out, each one '
        'command: %s.\n%s' % (run, first[0], STEP_TEXT.get(steps[first[0]], steps[first[0]]), _commands(),
                              '\n'.join(lines))))


def _gist(error):
    return ' '.join(str(error or 'no answer').split())[:300]


def _unanswered_lines(found, hosts, unanswered):
    lines = ['%s: did not answer (%s)' % (host, _gist(unanswered[host])) for host in hosts if host in unanswered]
    for host in hosts:
        if host in unanswered:
            continue
        held = ['run %s %s' % (run, STEP_TEXT.get(entries[host]['step'], entries[host]['step']))
                for run, entries in sorted(found.items()) if host in entries]
        lines.append('%s: %s' % (host, '; '.join(held) if held else 'no unfinished restore run'))
    return lines


def _unanswered(found, hosts, unanswered):
    """A run to finish or undo needs the journal of every control plane: one that does not answer may hold the
    unfinished run, or be the only node still on it. Nothing is done until it answers."""
    silent = [host for host in hosts if host in unanswered]
    lines = _unanswered_lines(found, hosts, unanswered)
    one = len(silent) == 1
    return _result('refuse', lines=lines, msg=(
        '%s did not answer, so %s journal%s of restore runs could not be read: whether %s an unfinished run, and at '
        'which step, is unknown, and a run is only finished or undone with the journal of every control plane. '
        'Nothing was changed on any control plane. Once %s %s over SSH again, run the same command.\n%s'
        % (', '.join(silent), 'its' if one else 'their', '' if one else 's', 'it holds' if one else 'they hold',
           ', '.join(silent), 'answers' if one else 'answer', '\n'.join(lines))))


def _result(action, run=None, plan=None, steps=None, lines=None, msg=''):
    return {'action': action, 'run': run, 'plan': plan, 'steps': steps or {}, 'lines': lines or [], 'msg': msg}
