import { describe, expect, it } from 'vitest';
import { mapMasterData } from './master-data.ts';
import { parseTemplate } from './template.ts';

const projectsTemplate = parseTemplate({
  name: 'acme-projects',
  version: 1,
  kind: 'project',
  input: { format: 'csv', delimiter: ';' },
  groupBy: { path: 'Projekt' },
  fields: {
    projectId: { path: 'Projekt' },
    customerId: { path: 'Kunde', lookup: { 'Acme Corp': 'acme', 'Globex GmbH': 'globex' } },
    contractId: { path: 'Vertrag' },
    region: { const: 'emea' },
    currency: { const: 'EUR' },
    billingModel: { path: 'Modell', lookup: { 'T&M': 'tm', Festpreis: 'fixed_fee' } },
    status: { const: 'active' },
    legalEntity: { const: 'ACME-DE' },
    notToExceed: { path: 'Budget', money: { decimal: ',', group: '.' }, optional: true },
    tasks: { collect: { fields: { taskId: { path: 'Aufgabe' }, billable: { path: 'Abrechenbar', boolean: { true: ['ja'], false: ['nein'] } } } } },
  },
});

const projectsCsv = [
  'Projekt;Kunde;Vertrag;Modell;Budget;Aufgabe;Abrechenbar',
  'acme-web;Acme Corp;C-100;T&M;12.500,00;design;ja',
  'acme-web;Acme Corp;C-100;T&M;12.500,00;dev;ja',
  'acme-web;Acme Corp;C-100;T&M;12.500,00;pm;nein',
  'globex-erp;Globex GmbH;C-200;Festpreis;;impl;ja',
  'initech;Initech;C-300;T&M;;dev;ja',
  '',
].join('\n');

describe('master data through templates', () => {
  it('maps a project with one row per task into one record with its tasks', () => {
    const result = mapMasterData(projectsTemplate, projectsCsv);
    expect(result.records.map((r) => r.record)).toEqual([
      {
        projectId: 'acme-web', customerId: 'acme', contractId: 'C-100', region: 'emea', currency: 'EUR', billingModel: 'tm',
        status: 'active', legalEntity: 'ACME-DE', notToExceed: '12500.00',
        tasks: [{ taskId: 'design', billable: true }, { taskId: 'dev', billable: true }, { taskId: 'pm', billable: false }],
      },
      {
        projectId: 'globex-erp', customerId: 'globex', contractId: 'C-200', region: 'emea', currency: 'EUR', billingModel: 'fixed_fee',
        status: 'active', legalEntity: 'ACME-DE', tasks: [{ taskId: 'impl', billable: true }],
      },
    ]);
    expect(result.records[0]?.rows).toEqual([2, 3, 4]);
    expect(result.records[0]?.msgId).toMatch(/^tpl:acme-projects:project:acme-web:acme-web:1:[0-9a-f]{16}$/);
    expect(result.errors).toEqual([{ rows: [6], field: 'customerId', reason: '"Kunde" "Initech" is not in the lookup table (it has "Acme Corp", "Globex GmbH")' }]);
  });

  it('gives changed content a new message id and equal content the same', () => {
    const a = mapMasterData(projectsTemplate, projectsCsv).records[0]?.msgId;
    const b = mapMasterData(projectsTemplate, projectsCsv).records[0]?.msgId;
    const c = mapMasterData(projectsTemplate, projectsCsv.replaceAll('12.500,00', '15.000,00')).records[0]?.msgId;
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });

  it('maps JSON assignments from a nested list and validates each against the contract', () => {
    const template = parseTemplate({
      name: 'psa-assignments',
      version: 2,
      kind: 'assignment',
      input: { format: 'json', recordsPath: 'data.assignments' },
      fields: {
        assignmentId: { path: 'id' },
        consultantId: { path: 'person.email', lookup: { 'kim@acme.test': 'kim-allen' } },
        projectId: { path: 'project' },
        taskId: { path: 'task' },
        role: { path: 'role', case: 'lower' },
        billable: { path: 'billable' },
        startDate: { path: 'from', date: 'iso' },
        endDate: { path: 'to', date: 'MM/DD/YYYY' },
        revision: { path: 'version', integer: true, default: 1 },
      },
    });
    const doc = {
      data: {
        assignments: [
          { id: 'a-1', person: { email: 'kim@acme.test' }, project: 'acme-web', task: 'design', role: 'Senior', billable: true, from: '2026-01-01', to: '12/31/2026', version: '3' },
          { id: 'a-2', person: { email: 'kim@acme.test' }, project: 'acme-web', task: 'dev', role: 'Senior', billable: true, from: '2026-06-01', to: '01/31/2026' },
        ],
      },
    };
    const result = mapMasterData(template, JSON.stringify(doc));
    expect(result.records.map((r) => r.record)).toEqual([
      { assignmentId: 'a-1', consultantId: 'kim-allen', projectId: 'acme-web', taskId: 'design', role: 'senior', billable: true, startDate: '2026-01-01', endDate: '2026-12-31', revision: 3 },
    ]);
    expect(result.errors).toEqual([{ rows: [2], field: 'endDate', reason: 'must be on or after startDate (2026-06-01)' }]);
  });

  const ratecards = parseTemplate({
    name: 'ratecards',
    version: 1,
    kind: 'ratecard',
    fields: {
      contractId: { path: 'contract' },
      role: { path: 'role' },
      rate: { path: 'rate', money: true },
      currency: { path: 'currency' },
      effectiveFrom: { path: 'from', date: 'YYYY-MM-DD' },
      effectiveTo: { path: 'to', date: 'YYYY-MM-DD', optional: true },
    },
  });

  it('accepts rate cards that meet end to start (effectiveTo is exclusive)', () => {
    const csv = 'contract,role,rate,currency,from,to\nC-100,senior,150,EUR,2026-01-01,2026-07-01\nC-100,senior,160,EUR,2026-07-01,\nC-100,junior,90,EUR,2026-01-01,\n';
    const result = mapMasterData(ratecards, csv);
    expect(result.errors).toEqual([]);
    expect(result.records.map((r) => r.record.rate)).toEqual(['150.00', '160.00', '90.00']);
  });

  it('refuses both rate cards of one contract and role whose ranges overlap, naming both', () => {
    const csv = 'contract,role,rate,currency,from,to\nC-100,senior,150,EUR,2026-01-01,2026-07-01\nC-100,senior,160,EUR,2026-06-01,\nC-100,junior,90,EUR,2026-01-01,\nC-200,senior,170,EUR,2026-06-01,\n';
    const result = mapMasterData(ratecards, csv);
    expect(result.records.map((r) => `${String(r.record.contractId)}/${String(r.record.role)}`)).toEqual(['C-100/junior', 'C-200/senior']);
    const reason = 'ratecard of contract C-100, role senior: 2026-01-01 → 2026-07-01 (row 2) overlaps 2026-06-01 → open (row 3); effective ranges of one contract and role must not overlap (effectiveTo is exclusive)';
    expect(result.errors).toEqual([
      { rows: [2], field: 'effectiveFrom', reason },
      { rows: [3], field: 'effectiveFrom', reason },
    ]);
  });

  it('reports a file it cannot read as a whole', () => {
    expect(mapMasterData(ratecards, 'a,"b\n').errors).toEqual([{ rows: [], field: '(file)', reason: 'CSV line 1: a quoted field is never closed' }]);
  });
});
