"""The restore journal: the step a node reached, read from its files, and what a new run may do."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeops.etcd.plugins.module_utils import restore_journal as journal

MEMBER = {'host': 'cp1', 'new_data_dir': '/var/lib/etcd-restored-20261203T010000Z', 'old_data_dir': '/var/lib/etcd',
          'prepared_manifest': '/r/20261203T010000Z/etcd.yaml'}
ALL = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']
CP = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']


@pytest.mark.parametrize('held,data_dir,prepared,step', [
    ([], '/var/lib/etcd', True, 'prepared'),
    (ALL, None, True, 'stopped'),
    (CP, '/var/lib/etcd', True, 'stopping'),           # stopped the other pods, not yet etcd
    (CP, '/var/lib/etcd-restored-20261203T010000Z', False, 'etcd_started'),
    ([], '/var/lib/etcd-restored-20261203T010000Z', False, 'started'),
    (ALL, None, False, 'rolling_back'),
    (CP, '/var/lib/etcd', False, 'rolled_back'),
    ([], '/var/lib/etcd', False, 'rolled_back'),
    ([], None, True, 'unknown'),
])
def test_the_step_is_read_from_the_files_each_step_renames(held, data_dir, prepared, step):
    facts = {'held': held, 'manifest_data_dir': data_dir, 'prepared_exists': prepared}
    assert journal.node_step(MEMBER, facts) == step


def plan(hosts=('cp1', 'cp2', 'cp3'), run='20261203T010000Z'):
    return {'timestamp': run, 'snapshot': {'path': '/srv/b/k.db'},
            'members': [dict(MEMBER, host=h) for h in hosts]}


def runs(steps, run='20261203T010000Z'):
    the_plan = plan(tuple(steps), run)
    return dict((host, [{'run': run, 'step': step, 'journal': journal.journal_document(the_plan, host, 'running', 'x')}])
                for host, step in steps.items())


HOSTS = ['cp1', 'cp2', 'cp3']


def test_no_unfinished_run_lets_a_new_run_go_and_a_resume_request_is_refused():
    assert journal.decide({}, HOSTS)['action'] == 'none'
    decided = journal.decide({}, HOSTS, resume=True)
    assert decided['action'] == 'refuse'
    assert decided['msg'].startswith('etcd_restore_resume was asked for, but no control plane of this play has an '
                                     'unfinished restore run')


def test_a_run_cut_short_before_the_stop_does_not_block_a_new_one_which_closes_it():
    decided = journal.decide(runs({'cp1': 'prepared', 'cp2': 'prepared', 'cp3': 'prepared'}), HOSTS)
    assert decided['action'] == 'warn'
    assert decided['run'] == '20261203T010000Z'
    assert decided['steps'] == {'cp1': 'prepared', 'cp2': 'prepared', 'cp3': 'prepared'}
    assert decided['msg'] == ('An earlier restore run (20261203T010000Z) was interrupted before anything was stopped; '
                              'nothing it left is in use. This run closes its journal (abandoned) once its own '
                              'members are prepared; playbooks/prune.yml lists what it left.')


def test_aborting_a_run_cut_short_before_the_stop_only_closes_its_journals():
    # Killed while the journals were written: cp3 has none, and nothing was stopped anywhere.
    decided = journal.decide(runs({'cp1': 'prepared', 'cp2': 'prepared'}), HOSTS, rollback=True)
    assert decided['action'] == 'close'
    assert decided['steps'] == {'cp1': 'prepared', 'cp2': 'prepared'}
    assert decided['msg'].startswith('The unfinished restore run 20261203T010000Z was interrupted before anything was '
                                     'stopped: every pod is in place and every etcd.yaml points at its previous data '
                                     'dir, so nothing is stopped or put back. Its journals are closed (aborted)')
    # One node stopped half way: the rollback runs, as for any run cut short after the stop.
    half = journal.decide(runs({'cp1': 'prepared', 'cp2': 'stopping', 'cp3': 'prepared'}), HOSTS, rollback=True)
    assert half['action'] == 'abort'
    # A run that stopped nothing cannot be resumed: a new restore starts over.
    resumed = journal.decide(runs({'cp1': 'prepared', 'cp2': 'prepared', 'cp3': 'prepared'}), HOSTS, resume=True)
    assert resumed['action'] == 'refuse' and 'cannot be finished from (prepared)' in resumed['msg']


def test_a_run_cut_short_after_the_stop_blocks_a_new_run_naming_each_node_and_both_commands():
    decided = journal.decide(runs({'cp1': 'etcd_started', 'cp2': 'stopped', 'cp3': 'etcd_started'}), HOSTS)
    assert decided['action'] == 'refuse'
    first = decided['msg'].split('\n')[0]
    assert first.startswith('An earlier restore run (20261203T010000Z) did not finish: cp1 is etcd started on the '
                            'restored data dir')
    assert 'etcd_restore_resume=true' in first and 'playbooks/restore_abort.yml' in first
    assert 'cp2: control plane stopped, etcd.yaml held aside' in decided['msg']


def test_resume_needs_every_node_at_the_same_resumable_step():
    same = runs({'cp1': 'stopped', 'cp2': 'stopped', 'cp3': 'stopped'})
    decided = journal.decide(same, HOSTS, resume=True)
    assert decided['action'] == 'resume'
    assert decided['steps'] == {'cp1': 'stopped', 'cp2': 'stopped', 'cp3': 'stopped'}
    assert decided['plan']['timestamp'] == '20261203T010000Z'
    mixed = journal.decide(runs({'cp1': 'etcd_started', 'cp2': 'stopped', 'cp3': 'etcd_started'}), HOSTS, resume=True)
    assert mixed['action'] == 'refuse' and 'did not all reach the same step' in mixed['msg']
    stuck = journal.decide(runs({'cp1': 'rolling_back', 'cp2': 'rolling_back', 'cp3': 'rolling_back'}), HOSTS,
                           resume=True)
    assert stuck['action'] == 'refuse' and 'cannot be finished from (rolling_back)' in stuck['msg']
    missing = runs({'cp1': 'stopped', 'cp2': 'stopped', 'cp3': 'stopped'})
    del missing['cp3']
    assert journal.decide(missing, HOSTS, resume=True)['action'] == 'refuse'


def test_rollback_undoes_from_any_step_and_both_flags_are_refused():
    decided = journal.decide(runs({'cp1': 'etcd_started', 'cp2': 'stopped', 'cp3': 'rolling_back'}), HOSTS,
                             rollback=True)
    assert decided['action'] == 'abort'
    assert journal.decide({}, HOSTS, resume=True, rollback=True)['action'] == 'refuse'


def test_two_unfinished_runs_are_never_guessed_between():
    both = runs({'cp1': 'stopped', 'cp2': 'stopped', 'cp3': 'stopped'})
    other = runs({'cp1': 'stopped'}, run='20261203T020000Z')
    both['cp1'] = both['cp1'] + other['cp1']
    decided = journal.decide(both, HOSTS, rollback=True)
    assert decided['action'] == 'refuse' and decided['msg'].startswith('More than one unfinished restore run')


def test_the_journal_keeps_the_whole_plan_and_this_nodes_member():
    doc = journal.journal_document(plan(), 'cp2', 'running', '2026-12-03T01:00:00Z')
    assert doc['member']['host'] == 'cp2' and doc['plan']['timestamp'] == '20261203T010000Z'
    assert doc['status'] == 'running' and doc['format'] == 1
    with pytest.raises(ValueError):
        journal.journal_document(plan(), 'cp9', 'running', 'x')


def test_a_control_plane_that_does_not_answer_blocks_finishing_or_undoing_a_run_and_nothing_is_guessed():
    unanswered = {'cp2': 'Failed to connect to the host via ssh: ssh: connect to host 10.0.0.12 port 22: '
                         'Connection refused'}
    # The abort after a run whose rollback left cp2 unreachable: cp1 and cp3 are closed, cp2 cannot be read.
    for asked in ({'rollback': True}, {'resume': True}):
        decided = journal.decide({}, HOSTS, unanswered=unanswered, **asked)
        assert decided['action'] == 'refuse'
        first, lines = decided['msg'].split('\n', 1)
        assert first == ('cp2 did not answer, so its journal of restore runs could not be read: whether it holds an '
                         'unfinished run, and at which step, is unknown, and a run is only finished or undone with '
                         'the journal of every control plane. Nothing was changed on any control plane. Once cp2 '
                         'answers over SSH again, run the same command.')
        assert lines.splitlines() == [
            'cp2: did not answer (Failed to connect to the host via ssh: ssh: connect to host 10.0.0.12 port 22: '
            'Connection refused)', 'cp1: no unfinished restore run', 'cp3: no unfinished restore run']
    # An unfinished run on the others is named with its step; a new restore is refused as well.
    decided = journal.decide(runs({'cp1': 'stopped', 'cp3': 'stopped'}), HOSTS, unanswered=unanswered)
    assert decided['action'] == 'refuse' and decided['msg'].startswith('cp2 did not answer')
    assert 'cp1: run 20261203T010000Z control plane stopped, etcd.yaml held aside' in decided['msg']
    # A new restore with nothing unfinished does not start without cp2 either, and says how to go on without it.
    decided = journal.decide({}, HOSTS, unanswered=unanswered)
    assert decided['action'] == 'refuse'
    assert decided['msg'] == (
        'cp2 did not answer (Failed to connect to the host via ssh: ssh: connect to host 10.0.0.12 port 22: '
        'Connection refused). A restore changes every control plane of the play together, so it does not start '
        'without it. Bring it back, or, if it is lost for good, restore onto the others and declare it: '
        '-e etcd_restore_lost_hosts=cp2 (docs/restore.md, "Restoring onto the survivors"). Nothing was changed.')
