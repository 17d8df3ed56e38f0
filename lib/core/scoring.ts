import type { Config } from './config.ts';
import type { Level, TaskDoc } from './task.ts';

/**
 * Task priority: which waiting note runs next.
 *
 * base  = w_u·urgency + w_d·deadline + w_s·sender, each component a level 1–5 and the weights summing to 1, so base
 *         lies in [1, 5].
 * boost = min(age_boost_per_hour · hours waited since `created`, max_score − base)
 * score = base + boost, so score lies in [1, max_score] (max_score ≥ 5 by config).
 *
 * Ranking is by score descending, then `created` ascending (older first), then id ascending — a total order, so every
 * dispatcher (local engine, cloud scheduler, the read-only queue command) picks the same task from the same notes.
 *
 * Why the boost is linear up to a ceiling above every base score — the starvation bound:
 * once a task T has waited W = (max_score − base_T) / age_boost_per_hour hours (`starvationBoundHours`), its score is
 * max_score, the highest score any task can have. From then on a task is ranked ahead of T only if it has an equal
 * score AND precedes it in the tie-break, i.e. it was created before T (or at the same instant with a smaller id).
 * Every task that arrives after T is younger, so it loses that tie. Hence after W the set of tasks that can still
 * precede T is finite and fixed — the tasks created before T that are still waiting at time created_T + W — and it only
 * shrinks. With a dispatcher that serves one task per slot, T waits at most
 *   W + (number of those older tasks still waiting at created_T + W, each served once) × (service time per slot),
 * whatever the arrival rate. A task's base can only rise while it waits (a deadline comes closer, never further), so
 * the W computed when it arrives stays an upper bound. The argument assumes that a note enqueued later is not older:
 * a note with a back-dated `created` that is enqueued after T reached max_score also precedes T, adding one slot per
 * such note.
 *
 * The earlier system added a step boost (+0.25 after 1 day, +0.5 after 3 days, +1.0 after 7 days) and then clamped the
 * score to 1–5. A base-1 task there never exceeds 2, so under a steady stream of 5.0 arrivals it waits for ever; and
 * even a task that does reach 5 only ties with fresh urgent work, with no rule making it win the tie.
 */

export interface TaskScore {
  /** Final score in [1, max_score]; higher runs first. */
  score: number;
  /** Weighted sum of the components, in [1, 5]. */
  base: number;
  breakdown: { urgency: number; deadline: number; sender: number; ageBoost: number };
}

export type ScoringInput = Pick<TaskDoc, 'urgency' | 'deadline' | 'sender' | 'created'>;

export interface Rankable {
  id: string;
  score: number;
  created: Date;
}

export type SenderLists = Pick<
  Config,
  'vip_senders' | 'client_senders' | 'team_domains' | 'known_senders' | 'no_sender_score'
>;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

// Weighted sums of decimals such as 0.4·5 + 0.3·5 + 0.3·5 land one ulp off the exact value; rounding to a fixed grid
// makes such equal scores compare equal, so ties fall to the deterministic tie-break instead of float noise.
function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function toLevel(n: number): Level {
  return Math.min(5, Math.max(1, Math.round(n))) as Level;
}

export function urgencyScore(level: Level): Level {
  return level;
}

/** 5 under 24 h left (overdue included) · 4 under 3 days · 3 under a week · 2 under 30 days · 1 later or none. */
export function deadlineScore(deadline: Date | null, now: Date): Level {
  if (deadline === null) return 1;
  const left = deadline.getTime() - now.getTime();
  // An unparseable date carries no information about urgency, so it scores like no deadline.
  if (Number.isNaN(left)) return 1;
  if (left < DAY_MS) return 5;
  if (left < 3 * DAY_MS) return 4;
  if (left < 7 * DAY_MS) return 3;
  if (left < 30 * DAY_MS) return 2;
  return 1;
}

type SenderPattern = { kind: 'address'; address: string } | { kind: 'domain'; domain: string };

function parsePattern(raw: string): SenderPattern | null {
  const p = raw.trim().toLowerCase();
  if (p.startsWith('@')) {
    const domain = p.slice(1);
    return domain === '' ? null : { kind: 'domain', domain };
  }
  if (!p.includes('@')) return p === '' ? null : { kind: 'domain', domain: p };
  return { kind: 'address', address: p };
}

function matchesAny(address: string, domain: string | null, patterns: readonly string[]): boolean {
  for (const raw of patterns) {
    const pattern = parsePattern(raw);
    if (pattern === null) continue;
    if (pattern.kind === 'address') {
      if (pattern.address === address) return true;
    } else if (domain !== null) {
      // A dot boundary keeps `evilcompany.com` from passing as `company.com` while admitting `mail.company.com`.
      if (domain === pattern.domain || domain.endsWith(`.${pattern.domain}`)) return true;
    }
  }
  return false;
}

/**
 * 5 VIP · 4 client · 3 team domain · 2 known · 1 any other address; `no_sender_score` when there is no sender (the
 * operator's own note). Lists are checked from the highest score down, so a sender on several lists gets the highest.
 */
export function senderScore(sender: string | null, config: SenderLists): Level {
  const address = sender?.trim().toLowerCase() ?? '';
  if (address === '') return toLevel(config.no_sender_score);
  const at = address.lastIndexOf('@');
  const domain = at >= 0 && at < address.length - 1 ? address.slice(at + 1) : null;
  if (matchesAny(address, domain, config.vip_senders)) return 5;
  if (matchesAny(address, domain, config.client_senders)) return 4;
  if (matchesAny(address, domain, config.team_domains)) return 3;
  if (matchesAny(address, domain, config.known_senders)) return 2;
  return 1;
}

/** Hours of waiting after which a task of this base score holds max_score; see the module comment. */
export function starvationBoundHours(base: number, config: Pick<Config, 'priority'>): number {
  const { age_boost_per_hour: rate, max_score: maxScore } = config.priority;
  if (!(rate > 0)) return Infinity;
  return Math.max(0, maxScore - base) / rate;
}

export function scoreTask(task: ScoringInput, now: Date, config: Config): TaskScore {
  const w = config.priority_weights;
  const { age_boost_per_hour: rate, max_score: maxScore } = config.priority;
  const urgency = urgencyScore(task.urgency);
  const deadline = deadlineScore(task.deadline, now);
  const sender = senderScore(task.sender, config);
  // Weights are validated to sum to 1 only within 1e-6; the clamp keeps base inside [1, 5] regardless.
  const base = Math.min(5, Math.max(1, round6(w.urgency * urgency + w.deadline * deadline + w.sender * sender)));

  const waited = (now.getTime() - task.created.getTime()) / HOUR_MS;
  const waitHours = Number.isFinite(waited) ? Math.max(0, waited) : 0;
  const headroom = Math.max(0, maxScore - base);
  // Decided by the same quantity `starvationBoundHours` reports, so a task past its bound scores exactly max_score —
  // the tie the starvation argument relies on — even where rate · hours falls one ulp short of the headroom.
  const capped = waitHours >= starvationBoundHours(base, config) || rate * waitHours >= headroom;
  const ageBoost = round6(capped ? headroom : rate * waitHours);
  const score = capped ? maxScore : Math.min(maxScore, round6(base + ageBoost));

  return { score, base, breakdown: { urgency, deadline, sender, ageBoost } };
}

// Code-point order, not UTF-16 code-unit order (what `<` on strings gives), so ids outside the BMP sort the same way
// in every runtime and language that reads the queue.
function compareCodePoints(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.codePointAt(i) as number;
    const cb = b.codePointAt(j) as number;
    if (ca !== cb) return ca < cb ? -1 : 1;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  if (i < a.length) return 1;
  if (j < b.length) return -1;
  return 0;
}

// An invalid `created` must still sort somewhere fixed; last keeps it from jumping ahead of real waiting work.
function createdKey(d: Date): number {
  const t = d.getTime();
  return Number.isNaN(t) ? Infinity : t;
}

/** Score descending, then created ascending (older first), then id ascending: a deterministic total order. */
export function compareRanked(a: Rankable, b: Rankable): number {
  if (a.score !== b.score) return a.score > b.score ? -1 : 1;
  const ca = createdKey(a.created);
  const cb = createdKey(b.created);
  if (ca !== cb) return ca < cb ? -1 : 1;
  return compareCodePoints(a.id, b.id);
}

export function rankTasks<T extends ScoringInput & { id: string }>(
  tasks: readonly T[],
  now: Date,
  config: Config,
): Array<{ task: T; score: TaskScore }> {
  return tasks
    .map((task) => ({ task, score: scoreTask(task, now, config) }))
    .sort((x, y) =>
      compareRanked(
        { id: x.task.id, score: x.score.score, created: x.task.created },
        { id: y.task.id, score: y.score.score, created: y.task.created },
      ),
    );
}
