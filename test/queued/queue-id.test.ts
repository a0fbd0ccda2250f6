// Queue ids: unique and in the order they were made, also within one millisecond (queued
// recovers messages in qid order: a restart must not reorder two messages of one millisecond).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { newQueueId } from '../../src/mail/queue-id.js';
import { isQid } from '../../src/queued/names.js';

test('queue ids made in one millisecond, or after the clock stepped back, are unique and increasing', () => {
  const now = Date.now() + 60_000;
  const ids = [newQueueId(now)];
  for (let i = 0; i < 50_000; i++) ids.push(newQueueId(now));
  ids.push(newQueueId(now - 5_000));
  ids.push(newQueueId(now + 1));
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `${ids[i - 1]} then ${ids[i]}`);
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.ok(isQid(id), id);
});
