// Names that cross the IPC boundary: queue names and queue ids, checked here and only here.

/** Queue names: DESIGN.md `[a-z0-9][a-z0-9_-]*`, bounded so a name is always a safe folder. */
const QUEUE_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Queue ids as made by newQueueId(): 15 characters of its base-31 alphabet. */
const QID_RE = /^[0-9BCDFGHJKLMNPQRSTVWXYZ]{15}$/;

/** isQueueName - whether NAME may name a queue (and so a folder under the spool). */
export function isQueueName(name: string): boolean {
  return QUEUE_RE.test(name);
}

/** isQid - whether ID looks like a queue id (and so is a safe file name). */
export function isQid(id: string): boolean {
  return QID_RE.test(id);
}
