import { describe, expect, it } from 'vitest';
import { approvalDecision, approvalExpiresAt, isApprovalExpired } from '../../lib/core/approval.ts';
import { defaultConfig, validateConfig } from '../../lib/core/config.ts';

const config = defaultConfig();
const task = (over: Partial<{ title: string; body: string; type: string; approval: 'required' | 'auto' | null }>) => ({
  title: 'Summarise the weekly report',
  body: 'Read it and write three bullet points.',
  type: 'research',
  approval: null,
  ...over,
});

describe('approvalDecision', () => {
  it('lets a harmless task run without a human', () => {
    expect(approvalDecision(task({}), config)).toEqual({ required: false, reasons: [] });
  });

  it('requires approval when the note asks for it', () => {
    const d = approvalDecision(task({ approval: 'required' }), config);
    expect(d.required).toBe(true);
    expect(d.reasons).toEqual(['the note asks for approval (approval: required)']);
  });

  it('requires approval for configured types, whatever the note says', () => {
    const d = approvalDecision(task({ type: 'payment', approval: 'auto' }), config);
    expect(d).toEqual({ required: true, reasons: ['tasks of type "payment" always need approval'] });
  });

  it.each([
    ['Deploy the site', 'deploy'],
    ['Fix the PRODUCTION database', 'production'],
    ['delete old branches', 'delete'],
    ['Wire $5,000 to the supplier', 'wire'],
    ['Please send   email to the board', 'send email'],
    ['Remove the user', 'remove'],
    ['Execute the migration', 'execute'],
  ])('requires approval for "%s"', (title, word) => {
    const d = approvalDecision(task({ title, approval: 'auto' }), config);
    expect(d.required).toBe(true);
    expect(d.reasons).toEqual([`mentions "${word}"`]);
  });

  it('matches whole words only', () => {
    for (const title of ['Review the wireframes', 'Undeleted files report', 'Paywall copy review', 'Productionize? no: prod notes']) {
      expect(approvalDecision(task({ title }), config).required, title).toBe(false);
    }
  });

  it('matches the common inflections of a keyword, since a miss there runs risky work unapproved', () => {
    for (const title of ['Process the payments', 'Deploying the release', 'Send emails to all customers', 'pay invoice 42', 'Deleting old backups', 'Deployment notes', 'Refunds for order 7']) {
      expect(approvalDecision(task({ title }), config).required, title).toBe(true);
    }
  });

  it('reads the body as well as the title, and collects every reason', () => {
    const d = approvalDecision(
      task({ type: 'payment', approval: 'required', body: 'Then delete the draft and wire the money.' }),
      config,
    );
    expect(d.reasons).toEqual([
      'the note asks for approval (approval: required)',
      'tasks of type "payment" always need approval',
      'mentions "delete", "wire"',
    ]);
  });

  it('uses configured keywords and types', () => {
    const cfg = validateConfig({ approval: { keywords: ['refund'], required_types: ['email'] } });
    expect(approvalDecision(task({ title: 'Deploy it' }), cfg).required).toBe(false);
    expect(approvalDecision(task({ title: 'Issue a refund' }), cfg).reasons).toEqual(['mentions "refund"']);
    expect(approvalDecision(task({ type: 'EMAIL' }), cfg).required).toBe(true);
  });
});

describe('approval timeout', () => {
  it('defaults to 72 hours', () => {
    const at = new Date('2026-11-25T00:00:00Z');
    expect(approvalExpiresAt(at, config).toISOString()).toBe('2026-11-28T00:00:00.000Z');
    expect(isApprovalExpired(at, new Date('2026-11-27T23:59:59.999Z'), config)).toBe(false);
    expect(isApprovalExpired(at, new Date('2026-11-28T00:00:00Z'), config)).toBe(true);
  });

  it('follows the configured timeout', () => {
    const cfg = validateConfig({ approval: { timeout: '2h' } });
    const at = new Date('2026-11-25T00:00:00Z');
    expect(approvalExpiresAt(at, cfg).toISOString()).toBe('2026-11-25T02:00:00.000Z');
  });
});
