import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIdentity, judgeHolder, parseIdentity, type ProcessIdentity } from '../../src/shared/process-identity.js';

const me: ProcessIdentity = { host: 'localhost', machine: 'm1', boot: 'b1', pidNamespace: 'pid:[4026531836]', pid: 100, startTime: '500' };
/** Pid 200 runs here since tick 700; every other pid is free. */
const startTimeHere = (pid: number) => (pid === 200 ? '700' : '');
const judge = (h: Partial<ProcessIdentity>, asker: ProcessIdentity = me) => judgeHolder({ ...me, pid: 200, startTime: '700', ...h }, asker, startTimeHere);

describe('process identity', () => {
  it('judges a holder on another machine alive, though its boot id differs and its host name and pid namespace match', () => {
    assert.equal(judge({ machine: 'm2', boot: 'b2' }), 'alive');
    assert.equal(judge({ machine: 'm2', boot: 'b2', pid: 999 }), 'alive');
  });

  it('judges a holder on this machine from before a reboot gone', () => {
    assert.equal(judge({ boot: 'b0' }), 'gone');
  });

  it('judges a holder alive when either machine id is unknown', () => {
    assert.equal(judge({ machine: '', boot: 'b0' }), 'alive');
    assert.equal(judge({ boot: 'b0' }, { ...me, machine: '' }), 'alive');
  });

  it('judges a holder alive under another host name or pid namespace', () => {
    assert.equal(judge({ host: 'other', boot: 'b0' }), 'alive');
    assert.equal(judge({ pidNamespace: 'pid:[4026532000]', pid: 999 }), 'alive');
  });

  it('judges a holder in this boot and namespace by its pid and start time', () => {
    assert.equal(judge({}), 'alive');
    assert.equal(judge({ pid: 999 }), 'gone');
    assert.equal(judge({ startTime: '650' }), 'gone'); // the pid was reused
    assert.equal(judge({ pid: 100, startTime: '500' }), 'alive');
    assert.equal(judge({ pid: 100, startTime: '400' }), 'gone');
  });

  it('reads back what it writes, and reads the older form without a machine id as of an unknown machine', () => {
    assert.deepEqual(parseIdentity(formatIdentity(me)), me);
    const old = parseIdentity('localhost|b0|pid:[4026531836]|200|700');
    assert.deepEqual(old, { host: 'localhost', machine: '', boot: 'b0', pidNamespace: 'pid:[4026531836]', pid: 200, startTime: '700' });
    assert.equal(judgeHolder(old!, me, startTimeHere), 'alive');
    assert.equal(parseIdentity('garbage'), undefined);
  });
});
